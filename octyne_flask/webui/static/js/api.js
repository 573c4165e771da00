// The one way the dashboard talks to the daemon: same-origin requests under
// `api/`, authenticated by the HttpOnly cookie set at login; requests for another
// node of the cluster go to its URL with the cluster token (node.js).

import { clusterToken, currentNode } from "./node.js";

/** `{"error": ...}`, or the bulk-operation form `{"errors": [{index, message}]}`. */
function describe(status, body) {
  if (body && typeof body.error === "string") return body.error;
  if (body && Array.isArray(body.errors) && body.errors.length) {
    return body.errors.map((item) => `#${item.index + 1}: ${item.message}`).join("; ");
  }
  return `Request failed (HTTP ${status})`;
}

/** The daemon answered with an error status; `message` is its `error` field. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body || {};
  }
}

/** The request never got an answer: daemon down, network gone. */
class ApiUnreachable extends Error {
  constructor() {
    super("The Octyne API cannot be reached.");
  }
}

const problemHandlers = { expired: () => {}, unreachable: () => {} };

/** Called by main.js: what to show when the session ends or the daemon disappears. */
export function onApiProblem({ expired, unreachable }) {
  problemHandlers.expired = expired;
  problemHandlers.unreachable = unreachable;
}

/** Report an ended session found outside `request` (the console WebSocket's 4401 close). */
export function reportExpired(error) {
  problemHandlers.expired(error);
}

/**
 * Absolute URL of an API path: relative to the page so a reverse-proxy prefix keeps working,
 * or under another node's URL.
 */
export function apiUrl(path, query = {}, node = currentNode()) {
  const url = node ? new URL(`${node.url}${path}`) : new URL(`api${path}`, document.baseURI);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
  }
  return url.toString();
}

/** The error for a non-2xx status, after telling the app about an ended session (on this node). */
function failure(status, body, { authenticated, node }) {
  const error = new ApiError(status, body);
  if (status === 401 && authenticated && !node) problemHandlers.expired(error);
  return error;
}

/**
 * The error for a request that got no answer. This daemon unreachable: its page is shown;
 * another node unreachable: an error of that node's page, not the whole dashboard's.
 */
function noAnswer(node) {
  if (node) return new ApiError(0, { error: `Node ${node.name} cannot be reached.` });
  const error = new ApiUnreachable();
  problemHandlers.unreachable(error);
  return error;
}

/** What a request to `node` carries: the cluster token instead of the cookie. */
function credentialsFor(node, headers = {}) {
  if (!node) return { headers, credentials: "same-origin" };
  return { headers: { ...headers, Authorization: clusterToken() || "" }, credentials: "omit" };
}

/**
 * One request. `authenticated: false` for login, whose 401 means "wrong
 * password", not "session expired".
 */
export async function request(method, path, { query, body, headers, authenticated = true, node = currentNode() } = {}) {
  let response;
  try {
    response = await fetch(apiUrl(path, query, node), { method, body, cache: "no-store", ...credentialsFor(node, headers) });
  } catch {
    throw noAnswer(node);
  }
  if (response.ok) return response;
  const payload = await response.json().catch(() => ({}));
  throw failure(response.status, payload, { authenticated, node });
}

export async function getJson(path, query, node = currentNode()) {
  return (await request("GET", path, { query, node })).json();
}

export async function getText(path, query) {
  return (await request("GET", path, { query })).text();
}

export async function sendJson(method, path, data, query) {
  const body = JSON.stringify(data);
  return (await request(method, path, { query, body, headers: { "Content-Type": "application/json" } })).json();
}

export async function sendText(method, path, text, query, node = currentNode()) {
  return (await request(method, path, { query, node, body: text, headers: { "Content-Type": "text/plain" } })).json();
}

/**
 * Multipart upload of one file in field `upload` with progress
 * (`onProgress(loaded, total)`); XMLHttpRequest because fetch reports no upload progress.
 */
export function uploadFile(path, query, file, onProgress) {
  return new Promise((resolve, reject) => {
    const node = currentNode();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl(path, query));
    for (const [name, value] of Object.entries(credentialsFor(node).headers)) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(failure(xhr.status, xhr.response, { authenticated: true, node }));
    });
    xhr.addEventListener("error", () => reject(noAnswer(node)));
    xhr.addEventListener("abort", () => reject(new Error("Upload cancelled.")));
    const form = new FormData();
    form.append("upload", file, file.name);
    xhr.send(form);
  });
}

/** A one-time ticket (`GET /ott`) for the console WebSocket or a download link. */
export async function ticket() {
  return (await getJson("/ott")).ticket;
}
