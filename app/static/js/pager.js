// A list loaded page by page with the API's cursors: a "More" button and a count.
import { h, plural } from "./dom.js";

/**
 * load(after) returns a connection; show(nodes, { reset }) renders its nodes.
 * Answers that arrive after a newer reset (a search typed further) are dropped.
 */
export function pager({ load, show, noun, nouns = `${noun}s`, onError, empty = `No ${nouns}` }) {
  const count = h("p", { class: "count", role: "status", tabindex: -1 });
  const more = h("button", { type: "button", class: "more", hidden: true }, `More ${nouns}`);
  let after = null;
  let shown = 0;
  let generation = 0;
  let loading = false;

  /** pages: how many pages to read at once (the URL's, when going back to a list). */
  async function fetchPage(reset, pages = 1) {
    const mine = reset ? ++generation : generation;
    if (reset) after = null;
    const hadFocus = document.activeElement === more;
    // Not `disabled`: a focused button that is disabled drops the focus to the page's body.
    loading = true;
    more.setAttribute("aria-disabled", "true");
    try {
      const page = await load(after, pages);
      if (mine !== generation) return;
      const nodes = page.edges.map((e) => e.node);
      shown = (reset ? 0 : shown) + nodes.length;
      after = page.pageInfo.endCursor;
      show(nodes, { reset });
      count.textContent = page.totalCount
        ? `Showing ${shown} of ${plural(page.totalCount, noun, nouns)}`
        : empty;
      more.hidden = !page.pageInfo.hasNextPage;
      // The last page: "More" goes away, and the focus with it would drop to the page's body.
      if (more.hidden && hadFocus) count.focus();
    } catch (error) {
      if (mine === generation) onError(error);
    } finally {
      loading = false;
      more.removeAttribute("aria-disabled");
    }
  }

  more.addEventListener("click", () => loading || fetchPage(false));
  return {
    footer: h("div", { class: "pager" }, count, more),
    reload: (pages = 1) => fetchPage(true, pages),
    get shownCount() { return shown; },
  };
}
