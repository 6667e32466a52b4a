// A move's page (a move, a merge or an undo: what it did, alert by alert), and the confirmation
// that follows a Save with its Undo.
import { graphql, MOVE_ITEMS, MOVE_PAGE } from "./api.js";
import { h, incidentLink, moveLink, moveName, plural, REASONS, time } from "./dom.js";
import { pager } from "./pager.js";
import { undoButton } from "./undo-dialog.js";

const WHAT = {
  LINK: "Alerts moved to another incident",
  MERGE: "Incidents merged into one",
  REVERT: "Alerts sent back to where they came from",
};

/** What was just saved ({ message, move, view }), with Undo while the move can be undone, and
 * View for the incident it went to (view) when the page stayed where it was. */
export function confirmation({ message, move, view, onView }, { onReverted }) {
  const open = (event) => {
    if (!onView) return;
    event.preventDefault();
    onView();
  };
  return h("div", { class: "confirmation" },
    h("p", {}, h("span", { "aria-hidden": "true" }, "✓ "), message,
      view && [" · ", h("a", { href: `#/incidents/${view.number}/log`, onclick: open }, "View")]),
    move && h("p", { class: "actions" },
      move.viewerCanRevert && undoButton(move, { onReverted }),
      moveLink(move)));
}

/** A table of moves, each linked to its page, with whether it was undone. */
export function moveList({ caption }) {
  const body = h("tbody");
  const table = h("table", { class: "moves" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, ["Move", "What", "By", "When", "Alerts", "Undo"].map((t) => h("th", { scope: "col" }, t)))),
    body);
  const undoState = (move) => move.revertedBy ? ["Undone by ", moveLink(move.revertedBy)]
    : move.viewerCanRevert ? "Can be undone" : h("span", { class: "muted" }, "Cannot be undone now");
  return {
    table,
    show(moves, { reset }) {
      if (reset) body.replaceChildren();
      body.append(...moves.map((move) => h("tr", {},
        h("td", {}, moveLink(move)),
        h("td", {}, WHAT[move.kind] ?? move.kind),
        h("td", {}, move.actor),
        h("td", {}, time(move.createdAt)),
        h("td", { class: "number" }, String(move.alertCount)),
        h("td", {}, undoState(move)))));
      if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No moves")));
    },
  };
}

export async function movePage(ctx, number) {
  const { move } = await graphql(MOVE_PAGE, { number });
  if (!move) {
    ctx.render(h("h1", { tabindex: -1 }, `Move ${number} not found`),
      h("p", {}, "There is no such move, or you may not see any incident it touched. ",
        h("a", { href: "#/incidents" }, "Back to the queue")));
    return;
  }
  const done = ctx.takeConfirmation();
  const field = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
  const links = (incidents) => incidents.length
    ? h("ul", { class: "plain" }, incidents.map((i) => h("li", {}, incidentLink(i))))
    : h("span", { class: "muted" }, "None you may see");
  ctx.render(
    h("p", { class: "crumbs" }, h("a", { href: "#/incidents" }, "Incidents"), " / ", moveName(move)),
    h("section", { class: "details", "aria-labelledby": "move-heading" },
      h("h1", { id: "move-heading", tabindex: -1 }, moveName(move)),
      h("p", { class: "meta" }, WHAT[move.kind] ?? move.kind, " by ", h("strong", {}, move.actor), " · ",
        time(move.createdAt), ` · ${plural(move.alertCount, "alert")}`),
      done && confirmation({ message: done.message, move: null }, {}),
      h("div", { class: "toolbar" }, revertState(ctx, move)),
      h("dl", {},
        field("Comment", move.comment === null
          ? h("span", { class: "muted" }, "Hidden: the move holds alerts you may not read.")
          : h("blockquote", { class: "comment" }, move.comment)),
        move.kind === "MERGE" && field("Reasons", move.reasons.length
          ? move.reasons.map((r) => REASONS[r] ?? r).join(", ")
          : h("span", { class: "muted" }, "None given")),
        move.target && field(move.kind === "MERGE" ? "Merged into" : "Moved to", incidentLink(move.target)),
        field(move.kind === "MERGE" ? "Merged incidents" : "Moved from", links(move.sources)),
        move.reverts && field("Undoes", moveLink(move.reverts)),
        field("Undone by", move.revertedBy ? moveLink(move.revertedBy) : h("span", { class: "muted" }, "Not undone")))),
    moveItems(ctx, move));
}

// Undo while the viewer may; otherwise why not, as far as the page knows.
function revertState(ctx, move) {
  if (move.viewerCanRevert) return undoButton(move, { onReverted: ctx.reverted });
  if (move.revertedBy) {
    return h("p", { class: "hint" }, "Already undone by ", moveLink(move.revertedBy), ".");
  }
  return h("p", { class: "hint" },
    "You cannot undo it: some of its alerts have moved since, or you may not move all of them.");
}

function moveItems(ctx, move) {
  const body = h("tbody");
  const list = pager({
    noun: "alert",
    load: async (after) => (await graphql(MOVE_ITEMS, { number: move.number, after })).move.items,
    show: (items, { reset }) => {
      if (reset) body.replaceChildren();
      body.append(...items.map((item) => h("tr", {},
        h("td", {}, h("a", { href: `#/alerts/${item.alert.number}` }, `#${item.alert.number} ${item.alert.title}`)),
        h("td", {}, incidentLink(item.from)),
        h("td", {}, incidentLink(item.to)))));
    },
    onError: ctx.fail,
  });
  list.reload();
  return h("section", { class: "move-items", "aria-labelledby": "move-items-heading" },
    h("h2", { id: "move-items-heading" }, "Alerts"),
    h("table", { class: "items" },
      h("caption", { class: "visually-hidden" }, `Alerts of ${moveName(move)}, where each came from and went`),
      h("thead", {}, h("tr", {}, ["Alert", "From", "To"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    list.footer);
}
