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
  INCIDENT_REOPENED: "Incident reopened", INCIDENT_MERGED: "Incident merged in",
  INCIDENT_REDIRECTED: "Merged into another incident", ALERTS_RETURNED: "Alerts returned",
  ALERTS_SENT_BACK: "Alerts sent back", INCIDENT_UNMERGED: "Merge undone",
  STATUS_CHANGED: "Status changed", ASSIGNED: "Assignment changed", CLASSIFIED: "Classified", COMMENTED: "Comment",
};
export const CLASSIFICATIONS = {
  UNKNOWN: "Not classified", TRUE_POSITIVE: "True positive", FALSE_POSITIVE: "False positive",
  INFORMATIONAL_EXPECTED_ACTIVITY: "Informational, expected activity",
};
// Defender's pairs, as the API checks them (Determination's description).
export const DETERMINATIONS = {
  TRUE_POSITIVE: {
    MALWARE: "Malware", PHISHING: "Phishing", COMPROMISED_ACCOUNT: "Compromised account",
    MULTI_STAGED_ATTACK: "Multi-staged attack", MALICIOUS_USER_ACTIVITY: "Malicious user activity",
    UNWANTED_SOFTWARE: "Unwanted software", OTHER: "Other",
  },
  INFORMATIONAL_EXPECTED_ACTIVITY: {
    SECURITY_TESTING: "Security testing", SECURITY_PERSONNEL: "Security personnel",
    LINE_OF_BUSINESS_APPLICATION: "Line-of-business application", CONFIRMED_ACTIVITY: "Confirmed activity",
    OTHER: "Other",
  },
  FALSE_POSITIVE: { NOT_MALICIOUS: "Not malicious", NOT_ENOUGH_DATA_TO_VALIDATE: "Not enough data to validate", OTHER: "Other" },
};
export const STATUSES = STATUS;
// What a move did, as a noun: "Merge #12".
const MOVE_KIND = { LINK: "Move", MERGE: "Merge", REVERT: "Revert" };
export const REASONS = {
  DUPLICATE: "Duplicate", SAME_ACTOR: "Same actor", SAME_CAMPAIGN: "Same campaign", SAME_ASSET: "Same asset",
  OTHER: "Other",
};
// Dates with their time zone: "Nov 20, 2026, 12:58 PM UTC" (the browser's zone, named).
const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", timeZoneName: "short",
});

export const severity = (s) => h("span", { class: `badge sev-${s.toLowerCase()}` }, SEVERITY[s] ?? s);
export const status = (s) => h("span", { class: `status st-${s.toLowerCase()}` }, STATUS[s] ?? s);
export const kind = (k) => KIND[k] ?? k;
const ENTITY_KIND = { DEVICE: "Device", USER: "User", IP: "IP", MAILBOX: "Mailbox", FILE: "File", URL: "URL" };
/** Why a search listed the incident by its evidence, under its name: "Matched Device SRV-9408-51"; null for a name match. */
export const matchedEvidence = (i) => i.matchedEvidence?.length
  ? h("div", { class: "matched-evidence" }, "Matched ",
    i.matchedEvidence.map((e) => `${ENTITY_KIND[e.kind] ?? e.kind} ${e.value}`).join(" · "))
  : null;
export const time = (iso) => h("time", { datetime: iso, title: iso }, dateTime.format(new Date(iso)));
export const incidentLink = (i) => i
  ? h("a", { href: `#/incidents/${i.number}` }, `#${i.number} ${i.name}`)
  : h("span", { class: "muted" }, "an incident you may not see");
export const moveName = (m) => `${MOVE_KIND[m.kind] ?? "Move"} #${m.number}`;
export const moveLink = (m) => h("a", { href: `#/moves/${m.number}` }, moveName(m));
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Calls fn once the user has stopped typing for `ms`. */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** An error line tied to a control with aria-describedby; show(null) hides it. An error tied to
 * no control takes the focus itself (tabindex -1), so that it does not drop to the page's body. */
export function errorSlot(id) {
  const element = h("p", { id, class: "error", role: "alert", tabindex: -1, hidden: true });
  let control = null;
  return {
    element,
    show(message, forControl = null) {
      control?.removeAttribute("aria-invalid");
      control = message ? forControl : null;
      control?.setAttribute("aria-invalid", "true");
      element.textContent = message ?? "";
      element.hidden = !message;
      if (message && !forControl && element.isConnected) element.focus();
    },
  };
}
