// The console history endpoints: pages of numbered lines, searches, a range download, and past inputs.

import { apiUrl, getJson, ticket } from "./api.js";
import { mayOn } from "./me.js";

const base = (id) => `/server/${encodeURIComponent(id)}/console`;

/**
 * A page of lines `{lines: [{seq, time, text, missed?}], more}`, ascending. Bounds: `before`/`after`
 * (sequence numbers), `q` with `regex`, `limit`. With `before` (or none) the newest matching lines.
 */
export function historyPage(id, { before, after, q, regex, limit = 500 } = {}) {
  return getJson(`${base(id)}/history`, { before, after, q: q || undefined, regex: regex ? "true" : undefined, limit });
}

/** The caller's own console inputs, oldest first (for the input line's up-arrow); [] without `console.write`. */
export async function ownInputs(id, user, limit = 100) {
  if (!mayOn(id, "console.write")) return [];
  const inputs = await getJson(`${base(id)}/inputs`, { limit, user: user || undefined });
  return inputs.map((entry) => entry.input).reverse();
}

/** A download link for the lines between two times (ms), with a fresh one-time ticket. */
export async function rangeDownloadUrl(id, from, to) {
  return apiUrl(`${base(id)}/history.txt`, { from, to, ticket: await ticket() });
}
