// Uploading into the open folder: from the file picker or dropped onto the
// listing, one file after another with a progress bar each.

import { ApiError } from "./api.js";
import { confirmDialog } from "./dialogs.js";
import { toast } from "./dom.js";
import { upload } from "./fileapi.js";
import { bytes } from "./format.js";

/**
 * Wire `picker` (an <input type=file multiple>) and `dropZone` to upload into
 * `folder`. `existingNames()` lists the folder (to confirm overwrites);
 * `onDone()` runs after each batch.
 */
export function acceptUploads({ id, folder, picker, dropZone, tasks, existingNames, onDone }) {
  async function uploadAll(files) {
    const names = new Set(existingNames());
    const existing = files.filter((file) => names.has(file.name));
    if (existing.length && !(await confirmDialog({
      title: `Replace ${existing.length} file(s)?`,
      message: `${existing.map((file) => file.name).join(", ")} already ${existing.length === 1 ? "exists" : "exist"} in ${folder} and will be overwritten.`,
      confirmLabel: "Replace",
    }))) return;
    for (const file of files) {
      const task = tasks.add(`Uploading ${file.name}`);
      task.progress(0);
      try {
        await upload(id, folder, file, (loaded, total) => task.progress(loaded / total, `${bytes(loaded)} of ${bytes(total)}`));
        task.done(`Uploaded ${bytes(file.size)}`);
      } catch (failure) {
        task.fail(failure.message);
        if (!(failure instanceof ApiError)) return; // unreachable or expired: its page is shown
      }
    }
    await onDone();
  }

  picker.addEventListener("change", () => {
    const files = [...picker.files];
    picker.value = "";
    uploadAll(files);
  });

  const carriesFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  dropZone.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    dropZone.classList.add("dragging");
  });
  dropZone.addEventListener("dragleave", (event) => {
    if (!dropZone.contains(event.relatedTarget)) dropZone.classList.remove("dragging");
  });
  dropZone.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dropZone.classList.remove("dragging");
    // Items must be read during the event: the DataTransfer is emptied afterwards.
    const items = [...event.dataTransfer.items].filter((item) => item.kind === "file");
    const folders = items.filter((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()?.isDirectory);
    if (folders.length) toast("Folders cannot be uploaded directly; compress them first or upload their files.", "error");
    uploadAll(items.filter((item) => !folders.includes(item)).map((item) => item.getAsFile()).filter(Boolean));
  });
}
