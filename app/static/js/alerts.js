// The alerts queue, and an alert's details pane.
import { alertTable, moveButton, Selection } from "./alert-table.js";
import { ALERT_DETAILS, ALERT_HISTORY, ALERTS, graphql } from "./api.js";
import { debounce, errorSlot, h, incidentLink, moveLink, severity, status, time } from "./dom.js";
import { confirmation } from "./moves.js";
import { openMovePanel } from "./move-panel.js";
import { pager } from "./pager.js";

export function alertsQueue(ctx) {
  const saved = ctx.takeConfirmation();  // a move just saved from here
  const selection = new Selection();
  const search = h("input", {
    id: "alert-search", type: "search", autocomplete: "off", placeholder: "e.g. powershell ws-4821",
    value: ctx.params.get("q") ?? "", "aria-describedby": "alert-search-error",
  });
  const searchError = errorSlot("alert-search-error");
  const alerts = alertTable(selection, { caption: "Alerts, most recently detected first" });
  const list = pager({
    noun: "alert",
    load: async (after) => (await graphql(ALERTS, { search: search.value.trim() || null, after })).alerts,
    show: (nodes, { reset }) => {
      searchError.show(null);
      if (reset) selection.drop(() => true);
      alerts.show(nodes, { reset });
    },
    onError: (error) => {
      if (error.code === "BAD_USER_INPUT") searchError.show(error.message, search);
      else ctx.fail(error);
    },
  });
  search.addEventListener("input", debounce(() => {
    const params = new URLSearchParams();
    if (search.value.trim()) params.set("q", search.value.trim());
    ctx.setParams(params);
    list.reload();
  }, 250));

  ctx.render(
    h("h1", { tabindex: -1 }, "Alerts"),
    saved && confirmation(saved, { onReverted: ctx.reverted }),
    h("div", { class: "toolbar filters" },
      h("div", { class: "search-field" }, h("label", { for: "alert-search" }, "Search alerts"), search,
        searchError.element)),
    h("div", { class: "toolbar" }, moveButton(selection, ctx.movedHere)),
    h("div", { class: "table-box" }, alerts.table),
    list.footer);
  list.reload();
}

export async function alertDetails(ctx, number) {
  const { alert } = await graphql(ALERT_DETAILS, { number });
  if (!alert) {
    ctx.render(h("h1", { tabindex: -1 }, `Alert ${number} not found`),
      h("p", {}, "There is no such alert, or you may not read it. ",
        h("a", { href: "#/alerts" }, "Back to the alerts")));
    return;
  }
  const field = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
  ctx.render(
    h("p", { class: "crumbs" }, h("a", { href: "#/alerts" }, "Alerts"), " / ", `#${number}`),
    h("section", { class: "details", "aria-labelledby": "alert-title" },
      h("h1", { id: "alert-title", tabindex: -1 }, alert.title),
      h("div", { class: "toolbar" },
        h("button", {
          type: "button", class: "primary", disabled: !alert.viewerCanLink,
          "aria-describedby": alert.viewerCanLink ? null : "alert-read-only",
          onclick: () => openMovePanel([alert], { onMoved: ctx.moved }),
        }, "Move alert to another incident"),
        !alert.viewerCanLink && h("p", { id: "alert-read-only", class: "hint" }, ctx.viewer.canViewIncidents
          ? `You may read alerts in scope “${alert.scope}” but not move them.`
          : "Moving alerts needs the incidents queue permission, which you do not have.")),
      h("dl", {},
        field("Incident", ctx.viewer.canViewIncidents ? incidentLink(alert.incident)
          : `#${alert.incident.number} ${alert.incident.name}`),
        field("Severity", severity(alert.severity)),
        field("Status", status(alert.status)),
        field("Category", alert.category),
        field("Detected", time(alert.detectedAt)),
        field("Scope", alert.scope),
        field("External ID", h("code", {}, alert.externalId)),
        field("Evidence", h("ul", { class: "entities" },
          alert.entities.map((e) => h("li", {},
            h("span", { class: "entity-kind" }, e.kind.toLowerCase()), " ", e.value))))),
      history(number)));
}

// Every incident the alert has been in, oldest first, and the move that took it there. Shown to
// viewers with the queue permission; the API refuses it to the others, and the section stays away.
function history(number) {
  const list = h("ol", { class: "history" });
  const section = h("section", { "aria-labelledby": "history-heading", hidden: true },
    h("h2", { id: "history-heading" }, "Where it has been"), list);
  graphql(ALERT_HISTORY, { number }).then(({ alert }) => {
    const places = alert?.history ?? [];
    list.replaceChildren(...places.map((place, i) => h("li", {},
      incidentLink(place.incident), " · ",
      place.move ? ["by ", moveLink(place.move)] : "where ingestion put it", " · ", time(place.at),
      i === places.length - 1 && h("span", { class: "muted" }, " (now)"))));
    section.hidden = places.length === 0;
  }, (error) => {
    if (error.code === "FORBIDDEN") return;
    list.replaceChildren(h("li", { class: "error" }, error.message));
    section.hidden = false;
  });
  return section;
}
