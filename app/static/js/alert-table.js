// Alerts with checkboxes, the selection they feed, and the toolbar's move button.
import { h, incidentLink, plural, severity, status, time } from "./dom.js";
import { openMovePanel } from "./move-panel.js";

/** What is checked in one view, by id: alerts, or the queue's incidents for a merge. */
export class Selection {
  #items = new Map();
  #listeners = [];

  get size() { return this.#items.size; }
  has(id) { return this.#items.has(id); }
  list() { return [...this.#items.values()]; }
  onChange(listener) { this.#listeners.push(listener); }

  set(item, checked) {
    if (checked) this.#items.set(item.id, item);
    else this.#items.delete(item.id);
    this.#changed();
  }

  /** Unchecks what no longer shows, e.g. the alerts of an incident that collapses. */
  drop(predicate) {
    for (const item of this.list()) if (predicate(item)) this.#items.delete(item.id);
    this.#changed();
  }

  #changed() { for (const listener of this.#listeners) listener(this); }
}

let hints = 0;

/** The move button of a toolbar: always there, so that it can be found; it acts once alerts are
 * checked, and says so until then. */
export function moveButton(selection, onMoved) {
  const hintId = `move-hint-${++hints}`;
  const hint = h("span", { id: hintId, class: "hint" });
  const button = h("button", {
    type: "button", class: "primary", "aria-describedby": hintId,
    onclick: () => selection.size && openMovePanel(selection.list(), { onMoved }),
  });
  const update = () => {
    const none = selection.size === 0;
    // aria-disabled, not disabled: it stays focusable, and its hint is read with it.
    button.setAttribute("aria-disabled", String(none));
    button.textContent = none ? "Move alerts to another incident"
      : `Move ${plural(selection.size, "alert")} to another incident`;
    hint.textContent = none ? "Check alerts to move them." : "";
  };
  selection.onChange(update);
  update();
  return h("span", { class: "move-action" }, button, hint);
}

/** A table of alerts, one checkbox each; alerts the viewer may not move cannot be checked. */
export function alertTable(selection, { caption, showIncident = true }) {
  const body = h("tbody");
  const headers = ["Alert", "Severity", "Status", "Category", showIncident && "Incident", "Detected"]
    .filter(Boolean);
  const table = h("table", { class: "alerts" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Select")),
      headers.map((title) => h("th", { scope: "col" }, title)))),
    body);

  function row(alert) {
    const movable = alert.viewerCanLink;
    const box = h("input", {
      type: "checkbox", checked: selection.has(alert.id), disabled: !movable,
      "aria-label": movable
        ? `Select alert ${alert.number}: ${alert.title}`
        : `Alert ${alert.number} is read-only for you and cannot be moved: ${alert.title}`,
      onchange: (event) => selection.set(alert, event.target.checked),
    });
    return h("tr", { "data-alert-id": alert.id },
      h("td", { class: "check" }, box),
      h("td", {}, h("a", { href: `#/alerts/${alert.number}` }, alert.title),
        !movable && h("span", { class: "read-only" }, " read-only")),
      h("td", {}, severity(alert.severity)),
      h("td", {}, status(alert.status)),
      h("td", {}, alert.category),
      showIncident && h("td", {}, incidentLink(alert.incident)),
      h("td", {}, time(alert.detectedAt)));
  }

  return {
    table,
    show(alerts, { reset = true } = {}) {
      if (reset) body.replaceChildren();
      body.append(...alerts.map(row));
    },
  };
}
