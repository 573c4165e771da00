// The files endpoints of one server (api.md §8), paths always absolute within the server folder.

import { apiUrl, getJson, getText, request, sendJson, sendText, ticket, uploadFile } from "./api.js";

const base = (id) => `/server/${encodeURIComponent(id)}`;

/** `/a/b` + `c` → `/a/b/c`. */
export function joinPath(folder, name) {
  return `${folder.replace(/\/+$/, "")}/${name}`;
}

/** `/a/b/c` → `/a/b`; the root's parent is the root. */
export function parentPath(path) {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(0, trimmed.lastIndexOf("/")) || "/";
}

export async function listFolder(id, path) {
  return (await getJson(`${base(id)}/files`, { path })).contents;
}

export async function createFolder(id, path) {
  return (await request("POST", `${base(id)}/folder`, { query: { path } })).json();
}

export async function deletePath(id, path) {
  return (await request("DELETE", `${base(id)}/file`, { query: { path } })).json();
}

/** `operation` is "mv" or "cp"; a `dest` that is an existing folder receives the item inside it. */
export function moveOrCopy(id, operation, src, dest) {
  return sendJson("PATCH", `${base(id)}/file`, { operation, src, dest });
}

/** All-or-nothing batch of {operation:"mv"|"cp",src,dest} and {operation:"rm",path}. */
export function runBatch(id, operations) {
  return sendJson("PATCH", `${base(id)}/files`, { operations });
}

export function readText(id, path) {
  return getText(`${base(id)}/file`, { path });
}

/** A download link carrying a fresh one-time ticket (valid 30 s, once). */
export async function downloadUrl(id, path) {
  return apiUrl(`${base(id)}/file`, { path, ticket: await ticket() });
}

export function upload(id, folder, file, onProgress) {
  return uploadFile(`${base(id)}/file`, { path: folder }, file, onProgress);
}

/** Start an async compression; resolves to the status token. */
export async function startCompress(id, { archive, basePath, archiveType, compress, names }) {
  const query = { path: archive, basePath, archiveType, compress, async: "true" };
  return (await sendJson("POST", `${base(id)}/compress/v2`, names, query)).token;
}

/** `{finished, progress?}`; an ApiError (500) when the compression failed. */
export function compressStatus(id, token) {
  return getJson(`${base(id)}/compress/v2`, { token });
}

export function decompress(id, archive, destination) {
  return sendText("POST", `${base(id)}/decompress`, destination, { path: archive });
}
