// The panel that moves alerts to another incident: an existing one picked by name or number, or
// a new one. Save runs linkAlerts; its errors show next to the control they are about.
import { graphql, idempotencyKey, INCIDENT_ID, INCIDENTS, KEY_REUSED, LINK_ALERTS } from "./api.js";
import { debounce, errorSlot, h, matchedEvidence, plural, severity, status } from "./dom.js";

const SEARCH_DELAY_MS = 200;
const INCIDENT_NUMBER = /^#?\s*(\d{1,9})$/;  // a number GraphQL's Int holds

/** Opens the panel for `alerts`; onMoved({ target, logEntries, move, summary }) runs after a move. */
export function openMovePanel(alerts, { onMoved }) {
  const key = idempotencyKey();  // one per opening: a Save clicked again after a lost answer moves once
  const title = alerts.length === 1
    ? "Move alert to another incident"
    : "Move multiple alerts to another incident";

  const alertsError = errorSlot("move-alerts-error");
  const alertItems = new Map(alerts.map((a) => [a.id, h("li", {},
    `#${a.number} ${a.title}`, h("span", { class: "muted" }, ` (in incident #${a.incident.number})`))]));

  // When every alert is in one incident, that one is no target: the move would change nothing.
  const homes = new Set(alerts.map((a) => a.incident.id));
  const home = homes.size === 1 ? alerts[0].incident : null;
  const picker = incidentPicker({ exclude: home?.id });
  const targetError = errorSlot("move-target-error");
  picker.input.setAttribute("aria-describedby", "move-target-error");
  const existingField = h("div", { class: "field" },
    h("label", { for: "move-target" }, "Incident name or ID"), picker.element, targetError.element);
  const newNote = h("p", { class: "hint", hidden: true },
    "A new incident is created and named after the alerts.");

  const comment = h("textarea", {
    id: "move-comment", name: "comment", rows: 4, maxlength: 30000, required: true,
    "aria-describedby": "move-comment-error",
  });
  const commentError = errorSlot("move-comment-error");
  const formError = errorSlot("move-form-error");

  const choice = (value, label, checked) => h("label", { class: "choice" },
    h("input", { type: "radio", name: "target", value, checked, onchange: modeChanged }), label);
  const save = h("button", { type: "submit", class: "primary" }, "Save");

  const form = h("form", { novalidate: true, onsubmit: submit },
    h("header", {},
      h("h2", { id: "move-title" }, title),
      h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => dialog.close() }, "×")),
    h("section", { "aria-labelledby": "move-alerts-heading" },
      h("h3", { id: "move-alerts-heading" }, `Selected: ${plural(alerts.length, "alert")}`),
      h("ul", { class: "selected-alerts" }, [...alertItems.values()]),
      alertsError.element),
    h("fieldset", {},
      h("legend", {}, "Move to"),
      choice("existing", "Link to an existing incident", true),
      choice("new", "Create a new incident", false)),
    existingField,
    newNote,
    h("div", { class: "field" },
      h("label", { for: "move-comment" }, "Comment ", h("span", { class: "muted" }, "(required)")),
      comment, commentError.element),
    formError.element,
    h("footer", {}, save, h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));

  const dialog = h("dialog", { class: "panel", "aria-labelledby": "move-title" }, form);
  // Someone else moved some of these alerts while the panel is open (a live change of the page):
  // say so before Save, next to the alerts.
  const movedAway = new Set();
  const onChange = ({ detail }) => {
    for (const entry of detail.entries) {
      if (entry.kind !== "ALERT_UNLINKED" || !entry.alert || !alertItems.has(entry.alert.id)) continue;
      movedAway.add(entry.alert.id);
      alertItems.get(entry.alert.id).append(h("strong", { class: "moved-away" }, ` moved by ${entry.actor} just now`));
    }
    if (movedAway.size) {
      alertsError.show(`${plural(movedAway.size, "alert")} of these moved to another incident since you opened this ` +
        "panel. Saving moves them again from where they are now.");
    }
  };
  document.addEventListener("incident-change", onChange);
  dialog.addEventListener("close", () => {
    document.removeEventListener("incident-change", onChange);
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  picker.input.focus();

  function creatingNew() {
    return form.elements.target.value === "new";
  }

  function modeChanged() {
    existingField.hidden = creatingNew();
    newNote.hidden = !creatingNew();
  }

  function clearErrors() {
    for (const slot of [alertsError, targetError, commentError, formError]) slot.show(null);
    for (const item of alertItems.values()) item.classList.remove("invalid");
  }

  // The target as linkAlerts takes it; a typed number is looked up for its id (ids come from the
  // API, the console never builds one). { missing } when no incident the viewer sees has it.
  async function target() {
    if (creatingNew()) return { createNew: true };
    if (picker.picked) return { existingIncidentId: picker.picked.id };
    const number = picker.input.value.trim().match(INCIDENT_NUMBER)?.[1];
    if (!number) return null;
    const { incident } = await graphql(INCIDENT_ID, { number: Number(number) });
    return incident ? { existingIncidentId: incident.id } : { missing: number };
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    let chosen;
    try {
      chosen = await target();
    } catch (error) {
      formError.show(error.message);
      return;
    }
    if (chosen?.missing) {
      targetError.show(`No incident #${chosen.missing} found, or you may not see it.`, picker.input);
      picker.input.focus();
      return;
    }
    if (chosen?.existingIncidentId && chosen.existingIncidentId === home?.id) {
      targetError.show(`${alerts.length === 1 ? "This alert is" : "These alerts are"} already in incident ` +
        `#${home.number}. Pick another incident.`, picker.input);
      picker.input.focus();
      return;
    }
    if (!chosen) targetError.show("Pick an incident from the list, or type its ID.", picker.input);
    if (!comment.value.trim()) commentError.show("A comment saying why is required.", comment);
    if (!chosen || !comment.value.trim()) {
      form.querySelector("[aria-invalid=true]").focus();
      return;
    }
    save.disabled = true;
    save.textContent = "Saving…";
    try {
      const { linkAlerts } = await graphql(LINK_ALERTS, {
        alertIds: alerts.map((a) => a.id), target: chosen, comment: comment.value, idempotencyKey: key,
      });
      if (linkAlerts.errors.length) {
        linkAlerts.errors.forEach(showError);
        form.querySelector("[aria-invalid=true]")?.focus();
        return;
      }
      dialog.close();
      const target = linkAlerts.targetIncident;
      onMoved({
        target, logEntries: linkAlerts.logEntries, move: linkAlerts.move, alertCount: alerts.length,
        summary: `Moved ${plural(alerts.length, "alert")} to incident #${target.number}.`,
      });
    } catch (error) {
      formError.show(error.message);
    } finally {
      save.disabled = false;
      save.textContent = "Save";
    }
  }

  // Each error goes next to what caused it: the alerts, the target field, or the comment.
  function showError({ field, message, alertIds }) {
    if (field === "comment") commentError.show(message, comment);
    else if (field?.startsWith("target") && !creatingNew()) targetError.show(message, picker.input);
    else if (field === "alertIds") {
      alertsError.show(message);
      for (const id of alertIds) alertItems.get(id)?.classList.add("invalid");
    } else if (field === "idempotencyKey") formError.show(KEY_REUSED);
    else formError.show(message);
  }
}

/**
 * "Incident name or ID": a combobox whose list filters as the user types (debounced).
 * ArrowDown/ArrowUp move through the list, Enter picks, Escape closes the list.
 */
function incidentPicker({ exclude = null } = {}) {
  const input = h("input", {
    id: "move-target", type: "text", role: "combobox", autocomplete: "off", spellcheck: "false",
    "aria-autocomplete": "list", "aria-expanded": "false", "aria-controls": "move-target-list",
  });
  const list = h("ul", { id: "move-target-list", role: "listbox", "aria-label": "Matching incidents", hidden: true });
  const hint = h("p", { class: "hint", role: "status" });
  // activateFirst: ArrowDown was pressed before the answer came, so the first option becomes active.
  const state = { picked: null, options: [], active: -1, generation: 0, activateFirst: false };

  const search = debounce(async (text) => {
    const mine = ++state.generation;
    try {
      const { incidents } = await graphql(INCIDENTS, { search: text || null, first: 10 });
      if (mine !== state.generation) return;
      show(incidents.edges.map((e) => e.node).filter((i) => i.id !== exclude), text);
    } catch (error) {
      if (mine === state.generation) hint.textContent = error.message;
    }
  }, SEARCH_DELAY_MS);

  function show(incidents, text) {
    // A later answer for the same typing keeps the option the arrow keys reached, if it still lists it.
    const activeId = state.options[state.active]?.id;
    state.options = incidents;
    state.active = -1;
    list.replaceChildren(...incidents.map((incident, i) => h("li", {
      id: `move-target-option-${incident.id}`, role: "option", "aria-selected": "false",
      onmousedown: (event) => event.preventDefault(),  // keep the focus in the input
      onclick: () => pick(i),
    },
    h("span", { class: "option-name" }, `#${incident.number} ${incident.name}`),
    matchedEvidence(incident),
    h("span", { class: "option-meta" }, severity(incident.severity), " ", status(incident.status),
      ` · ${plural(incident.alertCount, "alert")}`,
      incident.status === "RESOLVED" && h("span", { class: "reopens" }, " · moving reopens it")))));
    setOpen(incidents.length > 0);
    const kept = incidents.findIndex((i) => i.id === activeId);
    if (kept >= 0) setActive(kept);
    else if (state.activateFirst && incidents.length) setActive(0);
    state.activateFirst = false;
    hint.textContent = incidents.length
      ? `${plural(incidents.length, "incident")} match. Use the arrow keys and Enter to pick one.`
      : `No incident matches “${text}”.`;
  }

  function setOpen(open) {
    list.hidden = !open;
    input.setAttribute("aria-expanded", String(open));
    if (!open) setActive(-1);
  }

  function setActive(index) {
    state.active = index;
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    const option = list.children[index];
    if (option) {
      input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else input.removeAttribute("aria-activedescendant");
  }

  function pick(index) {
    const incident = state.options[index];
    state.picked = incident;
    input.value = `#${incident.number} ${incident.name}`;
    setOpen(false);
    hint.textContent = incident.status === "RESOLVED"
      ? `Picked incident #${incident.number}. It is resolved: moving alerts into it reopens it.`
      : `Picked incident #${incident.number}.`;
  }

  input.addEventListener("input", () => {
    state.picked = null;
    state.activateFirst = false;
    search(input.value.trim());
  });
  input.addEventListener("blur", () => setOpen(false));
  input.addEventListener("keydown", (event) => {
    const open = !list.hidden;
    const count = state.options.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!open) {
        state.activateFirst = true;
        search(input.value.trim());
        return;
      }
      const step = event.key === "ArrowDown" ? 1 : -1;
      setActive((state.active + step + count) % count);
    } else if (event.key === "Enter") {
      event.preventDefault();  // Enter picks; it never submits the form from here
      if (open && state.active >= 0) pick(state.active);
    } else if (event.key === "Escape" && open) {
      event.preventDefault();  // close the list, not the panel
      event.stopPropagation();
      setOpen(false);
    }
  });

  return {
    input,
    element: h("div", { class: "combobox" }, input, list, hint),
    get picked() { return state.picked; },
  };
}
