// A list loaded page by page with the API's cursors: a "More" button and a count.
import { h, plural } from "./dom.js";

/**
 * load(after) returns a connection; show(nodes, { reset }) renders its nodes.
 * Answers that arrive after a newer reset (a search typed further) are dropped.
 */
export function pager({ load, show, noun, nouns = `${noun}s`, onError }) {
  const count = h("p", { class: "count", role: "status" });
  const more = h("button", { type: "button", class: "more", hidden: true }, `More ${nouns}`);
  let after = null;
  let shown = 0;
  let generation = 0;

  async function fetchPage(reset) {
    const mine = reset ? ++generation : generation;
    if (reset) after = null;
    more.disabled = true;
    try {
      const page = await load(after);
      if (mine !== generation) return;
      const nodes = page.edges.map((e) => e.node);
      shown = (reset ? 0 : shown) + nodes.length;
      after = page.pageInfo.endCursor;
      show(nodes, { reset });
      count.textContent = page.totalCount
        ? `Showing ${shown} of ${plural(page.totalCount, noun, nouns)}`
        : `No ${nouns}`;
      more.hidden = !page.pageInfo.hasNextPage;
    } catch (error) {
      if (mine === generation) onError(error);
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener("click", () => fetchPage(false));
  return { footer: h("div", { class: "pager" }, count, more), reload: () => fetchPage(true) };
}
