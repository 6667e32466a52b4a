// Building DOM nodes, and the few formats every view shares.

/** h("a", { href: "#/x", class: "link", onclick: f }, "text", child) → an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== "string") el[name] = value;  // checked, disabled...
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const SEVERITY = { INFORMATIONAL: "Informational", LOW: "Low", MEDIUM: "Medium", HIGH: "High" };
const STATUS = {
  ACTIVE: "Active", IN_PROGRESS: "In progress", RESOLVED: "Resolved", REDIRECTED: "Redirected", NEW: "New",
};
const KIND = {
  ALERT_CORRELATED: "Alert correlated", ALERT_LINKED: "Alert moved in", ALERT_UNLINKED: "Alert moved out",
  INCIDENT_CREATED: "Incident created", INCIDENT_RESOLVED: "Incident resolved",
  INCIDENT_REOPENED: "Incident reopened",
};
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export const severity = (s) => h("span", { class: `badge sev-${s.toLowerCase()}` }, SEVERITY[s] ?? s);
export const status = (s) => h("span", { class: `status st-${s.toLowerCase()}` }, STATUS[s] ?? s);
export const kind = (k) => KIND[k] ?? k;
export const time = (iso) => h("time", { datetime: iso }, dateTime.format(new Date(iso)));
export const incidentLink = (i) => h("a", { href: `#/incidents/${i.number}` }, `#${i.number} ${i.name}`);
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Calls fn once the user has stopped typing for `ms`. */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
