// The small dialog that undoes a move, a merge or an undo: revertMove, with a comment.
import { graphql, idempotencyKey, KEY_REUSED, NAMED_NODES, REVERT_MOVE } from "./api.js";
import { errorSlot, h, moveName, plural } from "./dom.js";

const MAX_COMMENT = 30000;
const MAX_NAMED = 50;  // ids looked up at once to name them in an error; the rest are counted

/** The Undo button for `move`; onReverted(payload) runs after the undo. */
export function undoButton(move, { onReverted }) {
  return h("button", { type: "button", class: "primary", onclick: () => openUndoDialog(move, { onReverted }) },
    `Undo ${moveName(move).toLowerCase()}`);
}

/** Opens the dialog for `move` ({ id, number, kind, comment, alertCount }). */
export function openUndoDialog(move, { onReverted }) {
  const key = idempotencyKey();  // one per opening: an Undo clicked again after a lost answer acts once
  const name = moveName(move).toLowerCase();
  const back = move.alertCount === 1
    ? "its alert goes back to the incident it came from"
    : `its ${plural(move.alertCount, "alert")} go back to the incidents they came from`;
  const what = move.kind === "MERGE" ? `${back}, and the merged incidents become active again.` : `${back}.`;

  const comment = h("textarea", {
    id: "undo-comment", name: "comment", rows: 3, maxlength: MAX_COMMENT, required: true,
    "aria-describedby": "undo-comment-error",
  });
  comment.value = `Undo: ${move.comment ?? moveName(move)}`.slice(0, MAX_COMMENT);
  const commentError = errorSlot("undo-comment-error");
  const alertsError = errorSlot("undo-alerts-error");
  const named = h("ul", { class: "named", hidden: true });
  const formError = errorSlot("undo-form-error");
  const save = h("button", { type: "submit", class: "primary" }, "Undo");

  const form = h("form", { novalidate: true, onsubmit: submit },
    h("h2", { id: "undo-title" }, `Undo ${name}`),
    h("p", { id: "undo-what" }, `Undoing ${name}: ${what}`),
    h("div", { class: "field" },
      h("label", { for: "undo-comment" }, "Comment ", h("span", { class: "muted" }, "(required)")),
      comment, commentError.element),
    alertsError.element, named,
    formError.element,
    h("footer", {}, save, h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));

  const dialog = h("dialog", {
    class: "small", "aria-labelledby": "undo-title", "aria-describedby": "undo-what",
  }, form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  comment.focus();
  comment.setSelectionRange(comment.value.length, comment.value.length);

  async function submit(event) {
    event.preventDefault();
    for (const slot of [commentError, alertsError, formError]) slot.show(null);
    named.hidden = true;
    if (!comment.value.trim()) {
      commentError.show("A comment saying why is required.", comment);
      comment.focus();
      return;
    }
    save.disabled = true;
    save.textContent = "Undoing…";
    try {
      const { revertMove } = await graphql(REVERT_MOVE, { moveId: move.id, comment: comment.value, idempotencyKey: key });
      if (revertMove.errors.length) {
        await showErrors(revertMove.errors);
        (form.querySelector("[aria-invalid=true]") ?? save).focus();
        return;
      }
      dialog.close();
      onReverted(revertMove);
    } catch (error) {
      formError.show(error.message);
    } finally {
      save.disabled = false;
      save.textContent = "Undo";
    }
  }

  async function showErrors(errors) {
    const general = [];
    for (const error of errors) {
      if (error.field === "comment") commentError.show(error.message, comment);
      else if (error.field === "idempotencyKey") general.push(KEY_REUSED);
      else if (error.alertIds.length || error.incidentIds.length || error.moveIds.length) {
        alertsError.show(error.message);
        await linkNamed(error);
      } else general.push(error.message);
    }
    formError.show(general.join(" ") || null);
  }

  // What an error names (the alerts that moved since, the incidents merged since, and the moves
  // that did it) as links: their ids come from the error, their numbers from the API.
  async function linkNamed({ code, alertIds, incidentIds, moveIds }) {
    const ids = [...alertIds, ...incidentIds, ...moveIds];
    let nodes;
    try {
      nodes = (await graphql(NAMED_NODES, { ids: ids.slice(0, MAX_NAMED) })).nodes.filter(Boolean);
    } catch {
      return;  // the message alone still says what is wrong
    }
    const close = () => dialog.close();
    const link = (href, text) => h("a", { href, onclick: close }, text);
    const since = code === "INCIDENT_MERGED_SINCE" ? "Merged since by " : "Moved since by ";
    const more = ids.length > MAX_NAMED ? [h("li", {}, `and ${ids.length - MAX_NAMED} more`)] : [];
    named.replaceChildren(...nodes.map((node) => h("li", {},
      node.title !== undefined ? link(`#/alerts/${node.number}`, `Alert #${node.number} ${node.title}`)
        : node.name !== undefined ? link(`#/incidents/${node.number}`, `Incident #${node.number} ${node.name}`)
          : [since, link(`#/moves/${node.number}`, moveName(node))])), ...more);
    named.hidden = !named.children.length;
  }
}
