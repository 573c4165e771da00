// What can be done to items of the open folder: each action asks what it
// needs in a dialog, calls the API, reports in a toast and refreshes the listing.

import { ApiError } from "./api.js";
import { compressFlow, decompressFlow } from "./archives.js";
import { confirmDialog, promptDialog } from "./dialogs.js";
import { startDownload, toast } from "./dom.js";
import { createFolder, deletePath, downloadUrl, joinPath, moveOrCopy, parentPath, runBatch } from "./fileapi.js";

/** A path as typed: absolute, or relative to `folder`. */
function resolveTarget(folder, typed) {
  return typed.startsWith("/") ? typed : joinPath(folder, typed);
}

/** The actions for `folder` on server `id`; `reload()` refreshes the listing, `tasks` shows progress. */
export function createFileActions({ id, folder, tasks, reload }) {
  async function attempt(action, success) {
    try {
      await action();
      toast(success);
    } catch (failure) {
      if (failure instanceof ApiError) toast(failure.message, "error");
      return;
    }
    await reload();
  }

  return {
    async download(entry) {
      try {
        startDownload(await downloadUrl(id, joinPath(folder, entry.name)), entry.name);
      } catch (failure) {
        if (failure instanceof ApiError) toast(failure.message, "error");
      }
    },

    async newFolder() {
      const name = await promptDialog({ title: "New folder", label: "Folder name or path", confirmLabel: "Create" });
      if (name) await attempt(() => createFolder(id, resolveTarget(folder, name)), `Created ${name}`);
    },

    /** Rename/move (`mv`) or copy (`cp`) one item to a name or path the user types. */
    async transfer(entry, operation) {
      const typed = await promptDialog({
        title: `${operation === "mv" ? "Rename or move" : "Copy"} ${entry.name}`,
        label: "New name, or a path (starting with / for the server folder)",
        value: operation === "mv" ? entry.name : `copy of ${entry.name}`,
        confirmLabel: operation === "mv" ? "Move" : "Copy",
      });
      if (!typed || typed === entry.name) return;
      const src = joinPath(folder, entry.name);
      await attempt(() => moveOrCopy(id, operation, src, resolveTarget(folder, typed)),
        `${operation === "mv" ? "Moved" : "Copied"} ${entry.name}`);
    },

    async remove(entry) {
      const target = joinPath(folder, entry.name);
      const sure = await confirmDialog({
        title: `Delete ${entry.name}?`,
        message: entry.folder ? `The folder ${target} and everything in it will be deleted.` : `${target} will be deleted.`,
        confirmLabel: "Delete",
      });
      if (sure) await attempt(() => deletePath(id, target), `Deleted ${entry.name}`);
    },

    /** Move or copy several items into one folder, all or nothing (`PATCH /files`). */
    async bulkTransfer(names, operation) {
      const typed = await promptDialog({
        title: `${operation === "mv" ? "Move" : "Copy"} ${names.length} item(s)`,
        label: "Into the folder",
        value: parentPath(folder),
        confirmLabel: operation === "mv" ? "Move" : "Copy",
      });
      if (!typed) return;
      const destination = resolveTarget(folder, typed);
      const operations = names.map((name) => ({ operation, src: joinPath(folder, name), dest: joinPath(destination, name) }));
      await attempt(() => runBatch(id, operations), `${operation === "mv" ? "Moved" : "Copied"} ${names.length} item(s)`);
    },

    async bulkDelete(names) {
      const sure = await confirmDialog({
        title: `Delete ${names.length} item(s)?`,
        message: `${names.join(", ")} will be deleted, folders with everything in them.`,
        confirmLabel: "Delete",
      });
      if (!sure) return;
      const operations = names.map((name) => ({ operation: "rm", path: joinPath(folder, name) }));
      await attempt(() => runBatch(id, operations), `Deleted ${names.length} item(s)`);
    },

    async compress(names) {
      if (await compressFlow(id, folder, names, tasks)) await reload();
    },

    async decompress(entry) {
      if (await decompressFlow(id, folder, entry.name, tasks)) await reload();
    },
  };
}
