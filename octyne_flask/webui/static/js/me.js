// What the signed-in account may do (`GET /access/me`), asked once per page so
// the dashboard hides or disables what the daemon would refuse anyway. The
// daemon still checks every request; this only keeps refused buttons away.

import { getJson } from "./api.js";

let current = { admin: true, permissions: [], servers: {} };

/** Ask the daemon again (every page load); throws like any API call. */
export async function loadMe() {
  current = await getJson("/access/me");
  return current;
}

/** Whether the account holds the global permission `name` (e.g. `accounts.view`). */
export function may(name) {
  return current.admin || current.permissions.includes(name);
}

/** Whether the account holds the server permission `name` (e.g. `control`) on server `id`. */
export function mayOn(id, name) {
  return current.admin || (current.servers[id] || []).includes(name);
}
