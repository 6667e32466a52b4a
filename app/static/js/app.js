// The console: sign-in, the header, and a hash router over the views.
import { alertDetails, alertsQueue } from "./alerts.js";
import { ApiError, demoToken, graphql, subscribe, token, VIEWER } from "./api.js";
import { h, moveName, plural } from "./dom.js";
import { incidentPage, incidentsQueue } from "./incidents.js";
import { movePage } from "./moves.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const account = document.getElementById("account");
const announcer = document.getElementById("announcer");

// Matched against the hash's path; its query (?q=…&sort=…) is the view's state (ctx.params).
const ROUTES = [
  [/^#?\/?(?:incidents)?$/, (ctx) => incidentsQueue(ctx)],
  [/^#\/incidents\/(\d{1,9})(?:\/(log|alerts|moves))?$/, (ctx, number, tab) => incidentPage(ctx, Number(number), tab)],
  [/^#\/alerts$/, (ctx) => alertsQueue(ctx)],
  [/^#\/alerts\/(\d{1,9})$/, (ctx, number) => alertDetails(ctx, Number(number))],
  [/^#\/moves\/(\d{1,9})$/, (ctx, number) => movePage(ctx, Number(number))],
];

let viewer = null;
// What was just saved, shown once on the page it leads to:
// { hash, message, move, entryIds } (entryIds: the log entries it wrote there, marked as new).
let saved = null;
let generation = 0;
// The open live subscription of the page shown, closed when another page is shown.
let closeLive = null;

async function route() {
  closeLive?.();
  closeLive = null;
  if (!token.get()) return signIn();
  const mine = ++generation;
  const ctx = context(mine);
  try {
    viewer ??= (await graphql(VIEWER)).viewer;
    showAccount();
    const path = location.hash.split("?")[0];
    // Without the queue permission the incidents are not theirs to browse: the alerts queue is home.
    if (!viewer.canViewIncidents && /^#?\/?(?:incidents)?$/.test(path)) {
      location.replace("#/alerts");
      return;
    }
    const [pattern, view] = ROUTES.find(([p]) => p.test(path)) ?? [];
    if (!view) {
      ctx.render(h("h1", { tabindex: -1 }, "Page not found"),
        h("p", {}, h("a", { href: "#/incidents" }, "Go to the incidents queue")));
      return;
    }
    main.setAttribute("aria-busy", "true");
    await view(ctx, ...path.match(pattern).slice(1));
  } catch (error) {
    ctx.fail(error);
  } finally {
    if (mine === generation) main.removeAttribute("aria-busy");
  }
}

/** What a view may do: render into main (unless the user navigated on), report errors... */
function context(mine) {
  const current = () => mine === generation;
  const ctx = {
    viewer,
    params: new URLSearchParams(location.hash.split("?")[1] ?? ""),
    /** The view's state into the URL, without a new history entry nor a new render. */
    setParams(params) {
      if (!current()) return;  // a late answer of a view the user has left
      const query = params.toString();
      history.replaceState(null, "", `${location.hash.split("?")[0] || "#/incidents"}${query ? `?${query}` : ""}`);
    },
    render(...children) {
      if (!current()) return;
      main.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
      main.removeAttribute("aria-busy");
      for (const link of nav.querySelectorAll("a")) {
        const section = link.getAttribute("href").split("/")[1]?.split("?")[0];
        link.toggleAttribute("aria-current", location.hash.startsWith(`#/${section}`) ||
          (section === "incidents" && ["", "#", "#/"].includes(location.hash)));
      }
      main.querySelector("h1")?.focus();
    },
    fail(error) {
      if (!current()) return;
      if (error instanceof ApiError && error.status === 401) {
        token.clear();
        viewer = null;
        signIn(`Signed out: ${error.message}`);
        return;
      }
      if (error.code === "FORBIDDEN") {
        // Retrying cannot help: say what they may do instead.
        main.replaceChildren(
          h("h1", { tabindex: -1 }, "Not allowed"),
          h("p", { class: "error", role: "alert" }, error.message),
          h("p", {}, h("a", { href: "#/alerts" }, "Go to the alerts queue")));
      } else {
        main.replaceChildren(
          h("h1", { tabindex: -1 }, "Something went wrong"),
          h("p", { class: "error", role: "alert" }, error.message),
          h("button", { type: "button", onclick: route }, "Retry"));
      }
      main.querySelector("h1").focus();
    },
    /** After a move from a queue: the queue again, as it was, with a confirmation linking the target. */
    movedHere(result) {
      const { target, move } = result;
      const message = `Moved ${plural(result.alertCount, "alert")} to #${target.number}`;
      // View opens the target's log as a move from a page does: its new entries marked.
      show(location.hash, { message, move, view: target, onView: () => ctx.moved(result) },
        `${message}. The queue is as it was.`);
    },
    /** After a triage change or a note: the incident's log, its new entries marked. */
    changed({ number, message, entryIds }) {
      show(`#/incidents/${number}/log`, { message, entryIds: new Set(entryIds) }, message);
    },
    /** After a move or a merge: the target's log, its new entries marked, with Undo. */
    moved({ target, logEntries, move, summary }) {
      const entries = logEntries.filter((e) => e.incident.id === target.id);
      const count = plural(entries.length, "new log entry", "new log entries");
      show(`#/incidents/${target.number}/log`, { message: summary, move, entryIds: new Set(entries.map((e) => e.id)) },
        `${summary} Incident #${target.number} now shows ${count}.`);
    },
    /** After an undo: the page of the undo, which lists where every alert went back to. */
    reverted({ move, reverted, alerts }) {
      const undone = reverted ? moveName(reverted).toLowerCase() : "the move";
      const back = alerts.length === 1 ? "went back to the incident it came from"
        : "went back to the incidents they came from";
      const message = `Undid ${undone}: ${plural(alerts.length, "alert")} ${back}.`;
      show(`#/moves/${move.number}`, { message, move }, `${message} This page shows ${moveName(move)}.`);
    },
    /** Live updates for this page (app/api/subscriptions.py), until another page is shown. */
    live(variables, onChange) {
      if (!current()) return;
      closeLive?.();
      closeLive = subscribe(variables, (change) => {
        if (!current()) return;
        onChange(change);
        document.dispatchEvent(new CustomEvent("incident-change", { detail: change }));  // open panels listen
      });
    },
    /** What was just saved, if it leads to this page; shown once. */
    takeConfirmation() {
      const mine = saved?.hash === location.hash ? saved : null;
      saved = null;
      return mine;
    },
  };
  return ctx;
}

function show(hash, confirmation, announcement) {
  saved = { hash, entryIds: new Set(), ...confirmation };
  announcer.textContent = announcement;
  if (location.hash === hash) route();
  else location.hash = hash;
}

function showAccount() {
  nav.hidden = false;
  nav.querySelector('a[href="#/incidents"]').hidden = !viewer.canViewIncidents;
  account.replaceChildren(
    h("span", { class: "who" }, "Signed in as ", h("strong", {}, viewer.name)),
    h("button", { type: "button", onclick: signOut }, "Sign out"));
}

function signOut() {
  closeLive?.();
  closeLive = null;
  token.clear();
  viewer = null;
  signIn("Signed out.");
}

async function signIn(message = null) {
  ++generation;
  nav.hidden = true;
  account.replaceChildren();
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true,
    "aria-describedby": "token-hint token-error",
  });
  const hint = h("p", { id: "token-hint", class: "hint" },
    "Paste an API token. ", h("code", {}, "incidents user add NAME"), " prints one. ",
    "It is kept in this tab only (sessionStorage).");
  const error = h("p", { id: "token-error", class: "error", role: "alert", hidden: !message }, message ?? "");
  const submit = async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    try {
      if (!value) throw new Error("Paste a token first.");
      viewer = (await graphql(VIEWER, {}, { bearer: value })).viewer;
      token.set(value);
      route();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  };
  main.replaceChildren(h("section", { class: "sign-in" },
    h("h1", { tabindex: -1 }, "Sign in"),
    h("form", { onsubmit: submit, novalidate: true },
      h("label", { for: "token" }, "API token"), input, hint, error,
      h("button", { type: "submit", class: "primary" }, "Sign in"))));
  input.focus();
  const demo = await demoToken();
  if (demo && !input.value) {
    input.value = demo;
    hint.append(h("br"), "Prefilled with the demo user's token: this server runs with ", h("code", {}, "--demo"), ".");
  }
}

document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", route);
route();
