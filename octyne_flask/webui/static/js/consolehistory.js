// The console history endpoints: pages of numbered lines, searches, a range download, and past inputs.

import { ApiError, apiUrl, getJson, ticket } from "./api.js";

const base = (id) => `/server/${encodeURIComponent(id)}/console`;

/**
 * A page of lines `{lines: [{seq, time, text, missed?}], more}`, ascending. Bounds: `before`/`after`
 * (sequence numbers), `q` with `regex`, `limit`. With `before` (or none) the newest matching lines.
 */
export function historyPage(id, { before, after, q, regex, limit = 500 } = {}) {
  return getJson(`${base(id)}/history`, { before, after, q: q || undefined, regex: regex ? "true" : undefined, limit });
}

/** The caller's own console inputs, oldest first (for the input line's up-arrow); [] without the permission. */
export async function ownInputs(id, user, limit = 100) {
  try {
    const inputs = await getJson(`${base(id)}/inputs`, { limit, user: user || undefined });
    return inputs.map((entry) => entry.input).reverse();
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 403) return [];
    throw failure;
  }
}

/** A download link for the lines between two times (ms), with a fresh one-time ticket. */
export async function rangeDownloadUrl(id, from, to) {
  return apiUrl(`${base(id)}/history.txt`, { from, to, ticket: await ticket() });
}
