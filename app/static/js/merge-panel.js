// The panel that merges incidents picked in the queue into one of them. Save runs mergeIncidents;
// its errors show next to the incidents, the reasons or the comment they are about.
import { graphql, idempotencyKey, KEY_REUSED, MERGE_INCIDENTS } from "./api.js";
import { errorSlot, h, plural, REASONS, severity, status } from "./dom.js";

/**
 * What the server picks when no target is given: the most alerts, then the oldest (lowest number).
 * The server counts the alerts the viewer may write; the queue shows those they may read, so the
 * console always sends the target it shows.
 */
function defaultTarget(incidents) {
  return incidents.reduce((best, i) =>
    i.alertCount > best.alertCount || (i.alertCount === best.alertCount && i.number < best.number) ? i : best);
}

/** Opens the panel for `incidents` (two or more); onMerged({ target, logEntries, move, summary }) runs after. */
export function openMergePanel(incidents, { onMerged }) {
  const key = idempotencyKey();  // one per opening: a Save clicked again after a lost answer merges once
  const byNumber = [...incidents].sort((a, b) => a.number - b.number);
  const suggested = defaultTarget(incidents);

  const incidentsError = errorSlot("merge-incidents-error");
  const radios = new Map();
  const items = new Map(byNumber.map((incident) => {
    const radio = h("input", {
      type: "radio", name: "target", value: incident.id, checked: incident === suggested,
      "aria-describedby": `merge-target-${incident.number}-note merge-incidents-error`,
      onchange: targetChanged,
    });
    radios.set(incident.id, radio);
    return [incident.id, h("li", {},
      h("label", { class: "choice" }, radio, `#${incident.number} ${incident.name}`),
      h("p", { class: "option-meta" }, severity(incident.severity), " ", status(incident.status),
        ` · ${plural(incident.alertCount, "alert")}`,
        h("span", { id: `merge-target-${incident.number}-note`, class: "muted" },
          incident === suggested ? " · most alerts: the default target" : "")))];
  }));
  const outcome = h("p", { class: "hint", id: "merge-outcome" });

  const reasonsError = errorSlot("merge-reasons-error");
  const reasons = Object.entries(REASONS).map(([value, label]) => h("label", { class: "choice" },
    h("input", { type: "checkbox", name: "reasons", value }), label));

  const comment = h("textarea", {
    id: "merge-comment", name: "comment", rows: 4, maxlength: 30000, required: true,
    "aria-describedby": "merge-comment-error",
  });
  const commentError = errorSlot("merge-comment-error");
  const formError = errorSlot("merge-form-error");
  const save = h("button", { type: "submit", class: "primary" }, "Save");

  const form = h("form", { novalidate: true, onsubmit: submit },
    h("header", {},
      h("h2", { id: "merge-title" }, "Merge incidents"),
      h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => dialog.close() }, "×")),
    h("fieldset", { "aria-describedby": "merge-outcome" },
      h("legend", {}, `Merge ${plural(incidents.length, "incident")} into`),
      h("ul", { class: "merge-incidents" }, [...items.values()]),
      outcome,
      incidentsError.element),
    h("fieldset", { "aria-describedby": "merge-reasons-error" },
      h("legend", {}, "Reasons ", h("span", { class: "muted" }, "(optional)")),
      h("div", { class: "reasons" }, reasons),
      reasonsError.element),
    h("div", { class: "field" },
      h("label", { for: "merge-comment" }, "Comment ", h("span", { class: "muted" }, "(required)")),
      comment, commentError.element),
    formError.element,
    h("footer", {}, save, h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));

  const dialog = h("dialog", { class: "panel", "aria-labelledby": "merge-title" }, form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  targetChanged();
  radios.get(suggested.id).focus();

  function target() {
    return incidents.find((i) => i.id === form.elements.target.value);
  }

  function targetChanged() {
    const chosen = target();
    const sources = byNumber.filter((i) => i !== chosen);
    const moving = sources.reduce((n, i) => n + i.alertCount, 0);
    const named = sources.map((i) => `#${i.number}`).join(", ");
    outcome.textContent = `${named} will be marked Redirected to #${chosen.number}, and ` +
      `${sources.length === 1 ? "its" : "their"} ${plural(moving, "alert")} will move there.`;
  }

  function clearErrors() {
    for (const slot of [incidentsError, reasonsError, commentError, formError]) slot.show(null);
    for (const [id, item] of items) {
      item.classList.remove("invalid");
      radios.get(id).removeAttribute("aria-invalid");
    }
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    if (!comment.value.trim()) {
      commentError.show("A comment saying why is required.", comment);
      comment.focus();
      return;
    }
    const chosen = target();
    save.disabled = true;
    save.textContent = "Saving…";
    try {
      const { mergeIncidents } = await graphql(MERGE_INCIDENTS, {
        incidentIds: byNumber.map((i) => i.id),
        targetIncidentId: chosen.id,
        comment: comment.value,
        reasons: [...form.querySelectorAll("input[name=reasons]:checked")].map((box) => box.value),
        idempotencyKey: key,
      });
      if (mergeIncidents.errors.length) {
        showErrors(mergeIncidents.errors);
        form.querySelector("[aria-invalid=true]")?.focus();
        return;
      }
      dialog.close();
      const { target: into, sources } = mergeIncidents;
      onMerged({
        target: into, logEntries: mergeIncidents.logEntries, move: mergeIncidents.move,
        summary: `Merged ${plural(sources.length, "incident")} into incident #${into.number}.`,
      });
    } catch (error) {
      formError.show(error.message);
    } finally {
      save.disabled = false;
      save.textContent = "Save";
    }
  }

  // Each error goes next to what caused it; several about the incidents are shown together.
  function showErrors(errors) {
    const about = { incidents: [], reasons: [], comment: [], form: [] };
    for (const error of errors) {
      if (error.field === "comment") about.comment.push(error.message);
      else if (error.field === "reasons") about.reasons.push(error.message);
      else if (error.field === "idempotencyKey") about.form.push(KEY_REUSED);
      else if (error.incidentIds.length || ["incidentIds", "targetIncidentId"].includes(error.field)) {
        about.incidents.push(error.message);
        const [only, ...others] = error.incidentIds;
        if (error.code === "FORBIDDEN" && only && !others.length && only !== target().id && items.has(only)) {
          // The one incident that may not be a source can still be the target: its alerts stay.
          const incident = incidents.find((i) => i.id === only);
          about.incidents.push(`You may pick #${incident.number} as the target instead: a target's alerts do not move.`);
        }
        const named = error.field === "targetIncidentId" && !error.incidentIds.length
          ? [target().id] : error.incidentIds;
        for (const id of named) {
          items.get(id)?.classList.add("invalid");
          radios.get(id)?.setAttribute("aria-invalid", "true");
        }
      } else about.form.push(error.message);
    }
    incidentsError.show(about.incidents.join(" ") || null);
    reasonsError.show(about.reasons.join(" ") || null);
    commentError.show(about.comment.join(" ") || null, comment);
    formError.show(about.form.join(" ") || null);
    if (about.incidents.length && !form.querySelector("[aria-invalid=true]")) {
      radios.get(target().id).setAttribute("aria-invalid", "true");
    }
  }
}
