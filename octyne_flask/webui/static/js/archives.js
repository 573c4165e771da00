// Compressing a selection into zip / tar.gz / tar.zst (async, with progress
// from the status endpoint) and unpacking archives.

import { ApiError } from "./api.js";
import { formDialog } from "./dialogs.js";
import { compressStatus, decompress, joinPath, startCompress } from "./fileapi.js";

const STATUS_POLL_MS = 500;

const FORMATS = {
  zip: { label: "zip", archiveType: "zip", compress: "true" },
  "tar.gz": { label: "tar.gz (gzip)", archiveType: "tar", compress: "gzip" },
  "tar.zst": { label: "tar.zst (Zstandard)", archiveType: "tar", compress: "zstd" },
};

const ARCHIVE_SUFFIXES = [".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz", ".tbz", ".tar.bz2", ".tbz2",
  ".tar.xz", ".txz", ".tar.zst", ".tzst"];

/** The archive suffix of `name` (longest match), or null when the daemon can't unpack it. */
export function archiveSuffix(name) {
  const lower = name.toLowerCase();
  return ARCHIVE_SUFFIXES.filter((suffix) => lower.endsWith(suffix) && lower.length > suffix.length)
    .sort((a, b) => b.length - a.length)[0] || null;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Ask for a name and format, compress `names` (in `folder`), report progress on a new task. */
export async function compressFlow(id, folder, names, tasks) {
  const suggested = names.length === 1 ? names[0].replace(/\.[^.]*$/, "") || names[0] : "archive";
  const answer = await formDialog({
    title: `Compress ${names.length === 1 ? names[0] : `${names.length} items`}`,
    confirmLabel: "Compress",
    fields: [
      { name: "name", label: "Archive name (the extension is added)", value: suggested },
      { name: "format", label: "Format", value: "zip", options: Object.entries(FORMATS).map(([key, f]) => [key, f.label]) },
    ],
  });
  if (!answer) return false;
  const format = FORMATS[answer.format];
  const archiveName = `${answer.name}.${answer.format}`;
  const task = tasks.add(`Compressing ${archiveName}`);
  try {
    const token = await startCompress(id, {
      archive: joinPath(folder, archiveName), basePath: folder,
      archiveType: format.archiveType, compress: format.compress, names,
    });
    for (;;) {
      const status = await compressStatus(id, token);
      if (status.finished) break;
      task.progress(typeof status.progress === "number" ? status.progress : null);
      await sleep(STATUS_POLL_MS);
    }
    task.done(`Created ${archiveName}`);
    return true;
  } catch (failure) {
    task.fail(failure instanceof ApiError ? failure.message : "Failed.");
    return failure instanceof ApiError;
  }
}

/** Ask where to unpack `name` (in `folder`), then unpack it. */
export async function decompressFlow(id, folder, name, tasks) {
  const suffix = archiveSuffix(name);
  const answer = await formDialog({
    title: `Decompress ${name}`,
    confirmLabel: "Decompress",
    fields: [{ name: "destination", label: "Unpack into folder (created if missing)", value: joinPath(folder, name.slice(0, -suffix.length)) }],
  });
  if (!answer) return false;
  const task = tasks.add(`Decompressing ${name}`);
  task.progress(null);
  try {
    await decompress(id, joinPath(folder, name), answer.destination);
    task.done(`Unpacked into ${answer.destination}`);
  } catch (failure) {
    task.fail(failure instanceof ApiError ? failure.message : "Failed.");
  }
  return true;
}
