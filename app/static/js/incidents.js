// The incidents queue, and an incident's page with its Alerts and Activity log tabs.
import { alertTable, moveButton, Selection } from "./alert-table.js";
import { ACTIVITY_LOG, graphql, INCIDENT_ALERTS, INCIDENT_MOVES, INCIDENT_PAGE, INCIDENTS } from "./api.js";
import { debounce, h, incidentLink, kind, moveLink, plural, severity, status, time } from "./dom.js";
import { openMergePanel } from "./merge-panel.js";
import { confirmation, moveList } from "./moves.js";
import { pager } from "./pager.js";

const MERGE_MAX_INCIDENTS = 50;

export function incidentsQueue(ctx) {
  const selection = new Selection();  // alerts checked in expanded incidents
  const incidents = new Selection();  // incidents checked for a merge
  const search = h("input", {
    id: "incident-search", type: "search", autocomplete: "off",
    placeholder: "e.g. lat mov, 4821, smith",
  });
  const body = h("tbody");
  const list = pager({
    noun: "incident",
    load: async (after) => (await graphql(INCIDENTS, { search: search.value.trim() || null, after })).incidents,
    show: (nodes, { reset }) => {
      if (reset) {
        body.replaceChildren();
        selection.drop(() => true);
        incidents.drop(() => true);
      }
      body.append(...nodes.map((incident) => queueRow(incident, selection, incidents)));
    },
    onError: ctx.fail,
  });
  search.addEventListener("input", debounce(list.reload, 250));

  ctx.render(
    h("h1", { tabindex: -1 }, "Incidents"),
    h("div", { class: "toolbar" },
      h("label", { for: "incident-search" }, "Search incidents"), search,
      moveButton(selection, ctx.moved), mergeButton(incidents, ctx.moved)),
    h("table", { class: "queue" },
      h("caption", { class: "visually-hidden" }, "Incidents, most recently active first"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Select")),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Expand")),
        ["ID", "Name", "Severity", "Status", "Alerts", "Last activity"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    list.footer);
  list.reload();
}

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

function queueRow(incident, selection, incidents) {
  // A redirected incident was merged already: it cannot be merged again.
  const mergeable = incident.status !== "REDIRECTED";
  const box = h("input", {
    type: "checkbox", disabled: !mergeable,
    "aria-label": mergeable
      ? `Select incident ${incident.number}: ${incident.name}`
      : `Incident ${incident.number} was merged into another and cannot be merged: ${incident.name}`,
    onchange: (event) => incidents.set(incident, event.target.checked),
  });
  const detailId = `incident-${incident.number}-alerts`;
  const toggle = h("button", {
    type: "button", class: "expand", "aria-expanded": "false", "aria-controls": detailId,
    "aria-label": `Alerts of incident ${incident.number}`,
  }, "▸");
  const row = h("tr", {},
    h("td", { class: "check" }, box),
    h("td", {}, toggle),
    h("td", {}, String(incident.number)),
    h("td", {}, h("a", { href: `#/incidents/${incident.number}` }, incident.name)),
    h("td", {}, severity(incident.severity)),
    h("td", {}, status(incident.status)),
    h("td", { class: "number" }, String(incident.alertCount)),
    h("td", {}, time(incident.lastActivityAt)));
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
    detail = h("tr", { id: detailId, class: "expansion" }, h("td", { colspan: 8 }, alerts.table, list.footer));
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
  const saved = ctx.takeConfirmation();  // a move or merge just saved into this incident
  const tabLink = (href, label, current) => h("a", { href, "aria-current": current ? "page" : null }, label);
  ctx.render(
    h("p", { class: "crumbs" }, h("a", { href: "#/incidents" }, "Incidents"), " / ", `#${number}`),
    h("h1", { tabindex: -1 }, incident.name),
    h("p", { class: "meta" }, severity(incident.severity), " ", status(incident.status),
      ` · ${plural(incident.alertCount, "alert")} · created `, time(incident.createdAt),
      " · last activity ", time(incident.lastActivityAt),
      incident.redirectIncident && h("span", {}, " · merged into ", incidentLink(incident.redirectIncident))),
    h("nav", { class: "tabs", "aria-label": "Incident" },
      tabLink(base, `Alerts (${incident.alertCount})`, !tab || tab === "alerts"),
      tabLink(`${base}/log`, "Activity log", tab === "log"),
      tabLink(`${base}/moves`, "Moves", tab === "moves")),
    saved && confirmation(saved, { onReverted: ctx.reverted }),
    tab === "log" ? activityLog(ctx, incident, saved?.entryIds ?? new Set())
      : tab === "moves" ? incidentMoves(ctx, incident)
        : incidentAlerts(ctx, incident));
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
  return h("section", { class: "tab-panel", "aria-label": "Activity log, newest first" }, entries, list.footer);
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
