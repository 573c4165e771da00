// What the signed-in account may do (`GET /access/me`), asked once per page so
// the dashboard hides or disables what the daemon would refuse anyway. The
// daemon still checks every request; this only keeps refused buttons away.

import { getJson } from "./api.js";

const EVERYTHING = { admin: true, permissions: [], servers: {} };
let current = EVERYTHING;

/** An `/access/me` answer; anything else (Go Octyne 1.4 answers unknown paths with its version) means everything. */
export function summaryOf(answer) {
  return answer && Array.isArray(answer.permissions) ? answer : EVERYTHING;
}

/**
 * Ask the daemon (of the page's node) again, every page load; throws like any API call.
 * Go Octyne 1.4 (a static node) knows no `/access/me` and gives everyone every permission.
 */
export async function loadMe() {
  current = summaryOf(await getJson("/access/me").catch((failure) => {
    if (failure.status === 404) return null;
    throw failure;
  }));
  return current;
}

/** Whether the account holds the global permission `name` (e.g. `accounts.view`). */
export function may(name) {
  return current.admin || current.permissions.includes(name);
}

/**
 * Whether the account holds the server permission `name` (e.g. `control`) on server `id`;
 * `summary`: another node's `summaryOf` answer instead of this page's.
 */
export function mayOn(id, name, summary = current) {
  return summary.admin || (summary.servers[id] || []).includes(name);
}
