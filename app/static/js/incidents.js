// The incidents queue, and an incident's page with its Alerts and Activity log tabs.
import { alertTable, moveButton, Selection } from "./alert-table.js";
import {
  ACTIVITY_LOG, ADD_COMMENT, ASSIGN_INCIDENT, graphql, idempotencyKey, INCIDENT_ALERTS, INCIDENT_MOVES,
  INCIDENT_PAGE, KEY_REUSED, QUEUE, UPDATE_INCIDENT,
} from "./api.js";
import {
  CLASSIFICATIONS, debounce, DETERMINATIONS, errorSlot, h, incidentLink, kind, matchedEvidence, moveLink, plural,
  severity, status, STATUSES, time,
} from "./dom.js";
import { openMergePanel } from "./merge-panel.js";
import { confirmation, moveList } from "./moves.js";
import { pager } from "./pager.js";

const MERGE_MAX_INCIDENTS = 50;

const PAGE_SIZE = 20;
const MAX_FIRST = 100;
// The queue's sorts (IncidentSort), by the column that sorts by it.
const SORTABLE = { ID: "CREATED", Severity: "SEVERITY", Alerts: "ALERT_COUNT", "Last activity": "LAST_ACTIVITY" };
// Sorting by what the alerts make of an incident needs every scope (the API's rule).
const EVERY_SCOPE_SORTS = new Set(["SEVERITY", "ALERT_COUNT"]);
const STATUS_FILTERS = {
  "": "Any status", OPEN: "Open (active or in progress)", ACTIVE: "Active", IN_PROGRESS: "In progress",
  RESOLVED: "Resolved", REDIRECTED: "Merged",
};
const SEVERITY_FILTERS = { "": "Any severity", HIGH: "High", MEDIUM: "Medium", LOW: "Low", INFORMATIONAL: "Informational" };
const ASSIGNEE_FILTERS = { "": "Anyone or nobody", me: "Assigned to me", none: "Unassigned" };

const select = (id, options, value) => h("select", { id },
  Object.entries(options).map(([v, label]) => h("option", { value: v, selected: v === value }, label)));

/** The queue's filter as the API takes it, from the URL's state. */
function queueFilter(state) {
  const filter = {};
  if (state.q) filter.search = state.q;
  if (state.status) filter.status = state.status === "OPEN" ? ["ACTIVE", "IN_PROGRESS"] : [state.status];
  if (state.severity) filter.severity = [state.severity];
  if (state.assignee === "me") filter.assignedTo = ["me"];
  if (state.assignee === "none") filter.unassigned = true;
  return filter;
}

export function incidentsQueue(ctx) {
  const readsEverything = ctx.viewer.grants.some((g) => g.scope === "*");
  const p = ctx.params;
  const state = {
    q: p.get("q") ?? "", status: p.get("status") ?? "", severity: p.get("severity") ?? "",
    assignee: p.get("assignee") ?? "", sort: p.get("sort") ?? "LAST_ACTIVITY",
    pages: Math.max(1, Math.min(Number(p.get("pages")) || 1, MAX_FIRST / PAGE_SIZE)),
  };
  // A search lists newest activity first: the API refuses another sort with one.
  if (!Object.values(SORTABLE).includes(state.sort) || (EVERY_SCOPE_SORTS.has(state.sort) && !readsEverything)
    || state.q) {
    state.sort = "LAST_ACTIVITY";
  }
  const saved = ctx.takeConfirmation();  // a move just saved from here
  const selection = new Selection();  // alerts checked in expanded incidents
  const incidents = new Selection();  // incidents checked for a merge
  const search = h("input", {
    id: "incident-search", type: "search", autocomplete: "off", value: state.q,
    placeholder: "e.g. lat mov, 4821, smith", "aria-describedby": "incident-search-error",
  });
  const searchError = errorSlot("incident-search-error");
  const filters = {
    status: select("status-filter", STATUS_FILTERS, state.status),
    severity: select("severity-filter", SEVERITY_FILTERS, state.severity),
    assignee: select("assignee-filter", ASSIGNEE_FILTERS, state.assignee),
  };
  const body = h("tbody");
  const rows = new Map();  // incident id -> its row's checkbox, for select-all
  const all = h("input", {
    type: "checkbox", "aria-label": "Select every incident shown",
    onchange: (event) => {
      const checked = event.target.checked;
      bulk = true;
      for (const [incident, box] of rows.values()) {
        if (box.disabled) continue;
        box.checked = checked;
        incidents.set(incident, checked);
      }
      bulk = false;
    },
  });
  let bulk = false;  // select-all is checking the rows: it stays as the user set it
  const showAll = () => {
    const boxes = [...rows.values()].filter(([, box]) => !box.disabled);
    all.checked = boxes.length > 0 && boxes.every(([, box]) => box.checked);
    all.indeterminate = !all.checked && boxes.some(([, box]) => box.checked);
  };
  incidents.onChange(() => {
    if (!bulk) showAll();
  });

  const remember = () => {
    const params = new URLSearchParams();
    for (const name of ["q", "status", "severity", "assignee"]) if (state[name]) params.set(name, state[name]);
    if (state.sort !== "LAST_ACTIVITY") params.set("sort", state.sort);
    if (state.pages > 1) params.set("pages", String(state.pages));
    ctx.setParams(params);
  };
  const list = pager({
    noun: "incident",
    load: async (after, pages) => {
      const first = after ? PAGE_SIZE : Math.min(PAGE_SIZE * pages, MAX_FIRST);
      return (await graphql(QUEUE, { filter: queueFilter(state), sort: state.sort, first, after })).incidents;
    },
    show: (nodes, { reset }) => {
      searchError.show(null);
      if (reset) {
        body.replaceChildren();
        rows.clear();
        selection.drop(() => true);
        incidents.drop(() => true);
      }
      body.append(...nodes.map((incident) => queueRow(ctx, incident, selection, incidents, rows)));
      showAll();  // rows added by "More" are unchecked: "every incident shown" is no longer checked
      state.pages = Math.max(1, Math.ceil(list.shownCount / PAGE_SIZE));
      remember();
    },
    onError: (error) => {
      // The search's own mistakes (a ninth word...) are told at the field; the page stays.
      if (error.code === "BAD_USER_INPUT") searchError.show(error.message, search);
      else ctx.fail(error);
    },
  });
  const reload = () => {
    state.pages = 1;
    list.reload();
  };
  search.addEventListener("input", debounce(() => {
    state.q = search.value.trim();
    if (state.q) state.sort = "LAST_ACTIVITY";
    showSort();
    reload();
  }, 250));
  for (const [name, control] of Object.entries(filters)) {
    control.addEventListener("change", () => {
      state[name] = control.value;
      reload();
    });
  }
  // Someone else's move, merge or ingestion: the row shown is updated in place and marked.
  ctx.live({}, ({ incident, entries }) => {
    const row = body.querySelector(`tr[data-incident="${incident.id}"]`);
    if (row) row.update(incident, entries);
  });

  const sortButtons = new Map();  // sort -> its column's button
  const sortHint = h("p", { id: "sort-hint", class: "hint" });
  const showSort = () => {
    for (const [sort, button] of sortButtons) {
      const current = state.sort === sort;
      button.setAttribute("aria-pressed", String(current));
      if (current) button.parentElement.setAttribute("aria-sort", "descending");
      else button.parentElement.removeAttribute("aria-sort");
      button.disabled = Boolean(state.q);
    }
    sortHint.textContent = state.q && sortButtons.size ? "A search lists newest activity first; clear it to sort." : "";
    caption.textContent = `Incidents, ${SORT_WORDS[state.sort]}`;
  };
  const header = (title) => {
    const sort = SORTABLE[title];
    if (!sort || (EVERY_SCOPE_SORTS.has(sort) && !readsEverything)) return h("th", { scope: "col" }, title);
    const button = h("button", {
      type: "button", class: "sort", "aria-describedby": "sort-hint",
      onclick: () => {
        state.sort = sort;
        showSort();
        reload();
      },
    }, title, h("span", { class: "visually-hidden" }, `, sort ${SORT_WORDS[sort]}`));
    sortButtons.set(sort, button);
    return h("th", { scope: "col" }, button);
  };
  const caption = h("caption", { class: "visually-hidden" });
  const label = (id, text) => h("label", { for: id }, text);
  ctx.render(
    h("h1", { tabindex: -1 }, "Incidents"),
    saved && confirmation(saved, { onReverted: ctx.reverted }),
    h("div", { class: "toolbar filters" },
      h("div", { class: "search-field" }, label("incident-search", "Search incidents"), search, searchError.element,
        sortHint),
      h("div", {}, label("status-filter", "Status"), filters.status),
      h("div", {}, label("severity-filter", "Severity"), filters.severity),
      h("div", {}, label("assignee-filter", "Assigned"), filters.assignee)),
    h("div", { class: "toolbar" }, moveButton(selection, ctx.movedHere), mergeButton(incidents, ctx.moved)),
    h("div", { class: "table-box" },
      h("table", { class: "queue" },
        caption,
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, all),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Expand")),
          ["ID", "Name", "Severity", "Status", "Alerts", "Assigned to", "Last activity"].map(header))),
        body)),
    list.footer);
  showSort();
  list.reload(state.pages);
}

const SORT_WORDS = {
  LAST_ACTIVITY: "most recently active first", SEVERITY: "highest severity first",
  ALERT_COUNT: "most alerts first", CREATED: "newest first",
};

/** The merge button of the queue's toolbar: it shows once incidents are checked, and acts from two. */
function mergeButton(incidents, onMerged) {
  const hint = h("span", { id: "merge-hint", class: "hint" });
  const button = h("button", {
    type: "button", class: "primary", "aria-describedby": "merge-hint",
    onclick: () => openMergePanel(incidents.list(), { onMerged }),
  });
  const group = h("span", { class: "merge-action", hidden: true }, button, hint);
  incidents.onChange(() => {
    const count = incidents.size;
    group.hidden = count === 0;
    button.textContent = `Merge ${plural(count, "incident")}`;
    button.disabled = count < 2 || count > MERGE_MAX_INCIDENTS;
    hint.textContent = count < 2 ? "Check at least two incidents to merge them."
      : count > MERGE_MAX_INCIDENTS ? `At most ${MERGE_MAX_INCIDENTS} incidents can be merged at once.` : "";
  });
  return group;
}

function queueRow(ctx, incident, selection, incidents, rows) {
  // A redirected incident was merged already: it cannot be merged again.
  const mergeable = incident.status !== "REDIRECTED";
  const box = h("input", {
    type: "checkbox", disabled: !mergeable,
    "aria-label": mergeable
      ? `Select incident ${incident.number}: ${incident.name}`
      : `Incident ${incident.number} was merged into another and cannot be merged: ${incident.name}`,
    onchange: (event) => incidents.set(incident, event.target.checked),
  });
  rows.set(incident.id, [incident, box]);
  const detailId = `incident-${incident.number}-alerts`;
  const toggle = h("button", {
    type: "button", class: "expand", "aria-expanded": "false", "aria-controls": detailId,
    "aria-label": `Alerts of incident ${incident.number}`,
  }, "▸");
  const cells = (i) => [
    h("td", {}, h("a", { href: `#/incidents/${i.number}` }, i.name), matchedEvidence(i)),
    h("td", {}, severity(i.severity)),
    h("td", {}, status(i.status)),
    h("td", { class: "number" }, String(i.alertCount)),
    h("td", {}, i.assignedTo ?? h("span", { class: "muted" }, "Unassigned")),
    h("td", {}, time(i.lastActivityAt))];
  const row = h("tr", { "data-incident": incident.id },
    h("td", { class: "check" }, box),
    h("td", {}, toggle),
    h("td", {}, String(incident.number)),
    ...cells(incident));
  /** A live change: the row as the incident is now, marked as changed. */
  row.update = (changed, entries) => {
    const kept = [...row.children].slice(0, 3);
    const fresh = cells(changed);
    const by = entries.at(-1)?.actor;
    fresh[0].append(" ", h("span", { class: "badge new-badge", title: by ? `changed by ${by}` : "changed" }, "updated"));
    row.replaceChildren(...kept, ...fresh);
    row.classList.add("changed");
  };
  let detail = null;

  toggle.addEventListener("click", () => {
    const expanded = !detail;
    toggle.setAttribute("aria-expanded", String(expanded));
    toggle.textContent = expanded ? "▾" : "▸";
    if (!expanded) {
      detail.remove();
      detail = null;
      selection.drop((alert) => alert.incident.id === incident.id);
      return;
    }
    const alerts = alertTable(selection, { caption: `Alerts of incident ${incident.number}`, showIncident: false });
    const list = pager({
      noun: "alert",
      load: async (after) => (await graphql(INCIDENT_ALERTS, { id: incident.id, after })).incident.alerts,
      show: alerts.show,
      onError: (error) => list.footer.prepend(h("p", { class: "error", role: "alert" }, error.message)),
    });
    detail = h("tr", { id: detailId, class: "expansion" },
      h("td", { colspan: 9 }, h("div", { class: "table-box" }, alerts.table), list.footer));
    row.after(detail);
    list.reload();
  });
  return row;
}

export async function incidentPage(ctx, number, tab) {
  const { incident } = await graphql(INCIDENT_PAGE, { number });
  if (!incident) {
    ctx.render(h("h1", { tabindex: -1 }, `Incident ${number} not found`),
      h("p", {}, "There is no such incident, or you may not see it. ",
        h("a", { href: "#/incidents" }, "Back to the queue")));
    return;
  }
  const base = `#/incidents/${number}`;
  const saved = ctx.takeConfirmation();  // a move, merge or change just saved into this incident
  const tabLink = (href, label, current) => h("a", { href, "aria-current": current ? "page" : null }, label);
  const classifiedOf = (i) => i.classification !== "UNKNOWN"
    ? [" · ", CLASSIFICATIONS[i.classification],
      i.determination !== "UNKNOWN" ? ` (${determinationName(i)})` : ""]
    : "";
  const metaOf = (i) => [severity(i.severity), " ", status(i.status),
    ` · ${plural(i.alertCount, "alert")} · `,
    i.assignedTo ? ["assigned to ", h("strong", {}, i.assignedTo)] : "unassigned", classifiedOf(i),
    incident.redirectIncident && h("span", {}, " · merged into ", incidentLink(incident.redirectIncident))];
  const meta = h("p", { class: "meta" }, ...metaOf(incident));
  const notice = h("p", { class: "live-notice", role: "status", hidden: true });
  const log = tab === "log" ? activityLog(ctx, incident, saved?.entryIds ?? new Set()) : null;
  // Someone else changed it: the header and the log follow, and the page says what happened.
  ctx.live({ ids: [incident.id] }, ({ incident: now, entries }) => {
    meta.replaceChildren(...metaOf({ ...incident, ...now }));
    const actors = [...new Set(entries.map((e) => e.actor))].join(", ");
    notice.textContent = `Updated just now by ${actors}: ${plural(entries.length, "new log entry", "new log entries")}.`;
    notice.hidden = false;
    log?.prepend(entries);
  });
  ctx.render(
    h("p", { class: "crumbs" }, h("a", { href: "#/incidents" }, "Incidents"), " / ", `#${number}`),
    h("h1", { tabindex: -1 }, incident.name),
    meta,
    notice,
    h("p", { class: "dates" }, "Created ", time(incident.createdAt), " · latest alert detected ",
      time(incident.lastActivityAt)),
    saved && confirmation(saved, { onReverted: ctx.reverted }),
    triage(ctx, incident),
    h("nav", { class: "tabs", "aria-label": "Incident" },
      tabLink(base, `Alerts (${incident.alertCount})`, !tab || tab === "alerts"),
      tabLink(`${base}/log`, "Activity log", tab === "log"),
      tabLink(`${base}/moves`, "Moves", tab === "moves")),
    tab === "log" ? log.section
      : tab === "moves" ? incidentMoves(ctx, incident)
        : incidentAlerts(ctx, incident));
}

const determinationName = (incident) =>
  DETERMINATIONS[incident.classification]?.[incident.determination] ?? incident.determination;

/** Assign to me, status, classification and a note: the incident's lifecycle, for a viewer who may change it. */
function triage(ctx, incident) {
  if (incident.status === "REDIRECTED") return null;
  if (!incident.viewerCanUpdate) {
    return h("p", { class: "hint" },
      "You may read this incident but not change it: none of its alerts is yours to change.");
  }
  const after = (message, entries) => ctx.changed({ number: incident.number, message, entryIds: entries.map((e) => e.id) });
  const assignKey = idempotencyKey();
  const mine = incident.assignedTo === ctx.viewer.name;
  const assign = h("button", {
    type: "button",
    onclick: async () => {
      assignError.show(null);
      try {
        const { updateIncident: r } = await graphql(ASSIGN_INCIDENT, {
          id: incident.id, assignedTo: mine ? null : "me", idempotencyKey: assignKey,
        });
        if (r.errors.length) assignError.show(r.errors.map((e) => e.message).join(" "));
        else after(mine ? "Unassigned." : "Assigned to you.", r.logEntries);
      } catch (error) {
        assignError.show(error.message);
      }
    },
  }, mine ? "Unassign me" : "Assign to me");
  const assignError = errorSlot("assign-error");

  const key = idempotencyKey();
  const statusSelect = h("select", { id: "triage-status", "aria-describedby": "triage-status-error" },
    ["ACTIVE", "IN_PROGRESS", "RESOLVED"].map((v) => h("option", { value: v, selected: v === incident.status }, STATUSES[v])));
  const classification = h("select", { id: "triage-classification", "aria-describedby": "triage-classification-error" },
    Object.entries(CLASSIFICATIONS).map(([v, label]) => h("option", { value: v, selected: v === incident.classification }, label)));
  const determination = h("select", { id: "triage-determination", "aria-describedby": "triage-determination-error" });
  const fillDeterminations = (selected) => {
    const options = DETERMINATIONS[classification.value] ?? {};
    determination.replaceChildren(h("option", { value: "UNKNOWN" }, "Not determined"),
      ...Object.entries(options).map(([v, label]) => h("option", { value: v, selected: v === selected }, label)));
    determination.disabled = classification.value === "UNKNOWN";
  };
  fillDeterminations(incident.determination);
  classification.addEventListener("change", () => fillDeterminations(null));
  const comment = h("textarea", { id: "triage-comment", rows: 2, maxlength: 30000, "aria-describedby": "triage-comment-error" });
  const errors = {
    status: errorSlot("triage-status-error"), classification: errorSlot("triage-classification-error"),
    determination: errorSlot("triage-determination-error"), comment: errorSlot("triage-comment-error"),
    form: errorSlot("triage-form-error"),
  };
  const controls = { status: statusSelect, classification, determination, comment };
  const save = h("button", { type: "submit", class: "primary" }, "Save changes");
  const submit = async (event) => {
    event.preventDefault();
    for (const slot of Object.values(errors)) slot.show(null);
    // As the server does: only resolving, or unclassifying a resolved incident, needs a classification
    // (an incident emptied by moves is resolved unclassified, and a note on it must still save).
    const changing = statusSelect.value !== incident.status || classification.value !== incident.classification;
    if (statusSelect.value === "RESOLVED" && classification.value === "UNKNOWN" && changing) {
      errors.classification.show("Resolving needs a classification.", classification);
      classification.focus();
      return;
    }
    try {
      const { updateIncident: r } = await graphql(UPDATE_INCIDENT, {
        id: incident.id, status: statusSelect.value, classification: classification.value,
        determination: determination.value, comment: comment.value.trim() || null, idempotencyKey: key,
      });
      if (r.errors.length) {
        for (const e of r.errors) {
          if (e.field === "idempotencyKey") errors.form.show(KEY_REUSED);
          else if (errors[e.field]) errors[e.field].show(e.message, controls[e.field]);
          else errors.form.show(e.message);
        }
        form.querySelector("[aria-invalid=true]")?.focus();
        return;
      }
      after(r.logEntries.length ? `Saved: ${plural(r.logEntries.length, "change")} in the activity log.`
        : "Nothing changed.", r.logEntries);
    } catch (error) {
      errors.form.show(error.message);
    }
  };
  const field = (id, label, control, slot) => h("div", { class: "field" }, h("label", { for: id }, label), control, slot.element);
  const form = h("form", { class: "triage", novalidate: true, onsubmit: submit, "aria-labelledby": "triage-heading" },
    h("h2", { id: "triage-heading" }, "Triage"),
    h("div", { class: "assign" }, assign, assignError.element),
    h("div", { class: "triage-fields" },
      field("triage-status", "Status", statusSelect, errors.status),
      field("triage-classification", "Classification", classification, errors.classification),
      field("triage-determination", "Determination", determination, errors.determination)),
    field("triage-comment", "Comment (optional)", comment, errors.comment),
    errors.form.element,
    h("div", { class: "actions" }, save));
  return h("div", { class: "triage-box" }, form, noteForm(incident, after));
}

function noteForm(incident, after) {
  const key = idempotencyKey();
  const text = h("textarea", { id: "note-text", rows: 2, maxlength: 30000, "aria-describedby": "note-error" });
  const error = errorSlot("note-error");
  const submit = async (event) => {
    event.preventDefault();
    error.show(null);
    if (!text.value.trim()) {
      error.show("Write the note first.", text);
      text.focus();
      return;
    }
    try {
      const { addComment: r } = await graphql(ADD_COMMENT, { incidentId: incident.id, text: text.value, idempotencyKey: key });
      if (r.errors.length) {
        error.show(r.errors.map((e) => e.field === "idempotencyKey" ? KEY_REUSED : e.message).join(" "), text);
        text.focus();
      } else after("Note added to the activity log.", [r.logEntry]);
    } catch (e) {
      error.show(e.message);
    }
  };
  return h("form", { class: "note", novalidate: true, onsubmit: submit },
    h("label", { for: "note-text" }, "Add a note"), text, error.element,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add note")));
}

function incidentAlerts(ctx, incident) {
  const selection = new Selection();
  const alerts = alertTable(selection, { caption: `Alerts of incident ${incident.number}`, showIncident: false });
  const list = pager({
    noun: "alert",
    load: async (after) => (await graphql(INCIDENT_ALERTS, { id: incident.id, after })).incident.alerts,
    show: alerts.show,
    onError: ctx.fail,
  });
  list.reload();
  return h("section", { class: "tab-panel", "aria-label": "Alerts" },
    h("div", { class: "toolbar" }, moveButton(selection, ctx.moved)), alerts.table, list.footer);
}

function incidentMoves(ctx, incident) {
  const moves = moveList({ caption: `Moves into and out of incident ${incident.number}, newest first` });
  const list = pager({
    noun: "move",
    load: async (after) => (await graphql(INCIDENT_MOVES, { id: incident.id, after })).incident.moves,
    show: moves.show,
    onError: ctx.fail,
  });
  list.reload();
  return h("section", { class: "tab-panel", "aria-label": "Moves" }, moves.table, list.footer);
}

// Where the other incident of an entry stands, in words.
const OTHER = {
  ALERT_LINKED: "Moved here from ", ALERT_UNLINKED: "Moved to ", INCIDENT_RESOLVED: "Its last alert went to ",
  INCIDENT_MERGED: "Merged in: ", INCIDENT_REDIRECTED: "Merged into ", ALERTS_RETURNED: "Back from ",
  ALERTS_SENT_BACK: "Sent back to ", INCIDENT_UNMERGED: "No longer merged into ",
};

/** fresh: the entries a move or merge just wrote, marked as new. */
function activityLog(ctx, incident, fresh) {
  const entries = h("ol", { class: "log" });
  const list = pager({
    noun: "entry", nouns: "entries",
    load: async (after) => (await graphql(ACTIVITY_LOG, { id: incident.id, after })).incident.activityLog,
    show: (nodes, { reset }) => {
      if (reset) entries.replaceChildren();
      entries.append(...nodes.map((entry) => logEntry(entry, fresh.has(entry.id))));
    },
    onError: ctx.fail,
  });
  list.reload();
  const section = h("section", { class: "tab-panel", "aria-label": "Activity log, newest first" }, entries, list.footer);
  // A live change's entries, newest first, on top, marked as new.
  const prepend = (added) => entries.prepend(...added.toReversed().map((entry) => logEntry(entry, true)));
  return { section, prepend };
}

function logEntry(entry, isNew) {
  return h("li", { class: isNew ? "entry new" : "entry", "data-kind": entry.kind },
    h("p", { class: "entry-head" },
      h("span", { class: "kind" }, kind(entry.kind)), " by ", h("strong", { class: "actor" }, entry.actor),
      " · ", time(entry.createdAt), isNew && h("span", { class: "badge new-badge" }, "new")),
    h("p", { class: "message" }, entry.message),
    entry.comment && h("blockquote", { class: "comment" }, entry.comment),
    entry.otherIncident && h("p", { class: "other" }, OTHER[entry.kind] ?? "Other incident: ",
      incidentLink(entry.otherIncident)),
    entry.alert && h("p", { class: "about" }, "Alert ",
      h("a", { href: `#/alerts/${entry.alert.number}` }, `#${entry.alert.number} ${entry.alert.title}`)),
    entry.move && h("p", { class: "about" }, "Part of ", moveLink(entry.move)));
}
