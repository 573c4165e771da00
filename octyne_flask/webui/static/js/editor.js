// Editing small text files in place: load as text, save by uploading the new
// content under the same name. Binary or large files are refused, since a
// browser text area would corrupt or choke on them.

import { ApiError } from "./api.js";
import { confirmDialog } from "./dialogs.js";
import { h, toast } from "./dom.js";
import { bytes } from "./format.js";
import { joinPath, readText, upload } from "./fileapi.js";

const EDITABLE_LIMIT = 1024 * 1024;

/** Why `entry` (a listing item) cannot be edited, or null when it can. */
function refusalReason(entry) {
  if (entry.folder) return "Folders cannot be edited.";
  if (!entry.mimeType.startsWith("text/")) return `${entry.name} is not a text file (${entry.mimeType}).`;
  if (entry.size > EDITABLE_LIMIT) {
    return `${entry.name} is ${bytes(entry.size)}; only files up to ${bytes(EDITABLE_LIMIT)} can be edited here. Download it instead.`;
  }
  return null;
}

/** Open the editor for `entry` in `folder`; `onSaved()` after each successful save. */
export async function openEditor(id, folder, entry, onSaved) {
  const refusal = refusalReason(entry);
  if (refusal) {
    toast(refusal, "error");
    return;
  }
  const path = joinPath(folder, entry.name);
  let original;
  try {
    original = await readText(id, path);
  } catch (failure) {
    if (failure instanceof ApiError) toast(failure.message, "error");
    return;
  }
  if (original.includes("\uFFFD") || original.includes("\u0000")) {
    toast(`${entry.name} is not valid UTF-8 text; editing it here would corrupt it.`, "error");
    return;
  }
  const area = h("textarea", {
    id: "editor-text", class: "editor-text", spellcheck: "false", autocomplete: "off", wrap: "off",
    "aria-label": `Contents of ${entry.name}`,
  });
  area.value = original;
  const state = h("span", { class: "editor-state", role: "status" });
  const save = h("button", { type: "button", class: "primary", text: "Save" });
  const close = h("button", { type: "button", class: "secondary", text: "Close" });
  const dialog = h("dialog", { class: "editor", "aria-label": `Edit ${entry.name}` },
    h("div", { class: "editor-head" }, h("h2", { text: path }), state),
    area,
    h("div", { class: "dialog-actions" }, close, save));
  let saved = original;

  async function doSave() {
    save.disabled = true;
    state.textContent = "Saving…";
    try {
      const text = area.value;
      await upload(id, folder, new File([text], entry.name, { type: "text/plain" }), () => {});
      saved = text;
      state.textContent = "Saved";
      onSaved();
    } catch (failure) {
      state.textContent = failure instanceof ApiError ? `Not saved: ${failure.message}` : "Not saved.";
    } finally {
      save.disabled = false;
    }
  }

  async function requestClose() {
    if (area.value !== saved && !(await confirmDialog({
      title: "Discard changes?", message: `${entry.name} has unsaved changes.`, confirmLabel: "Discard",
    }))) return;
    dialog.close();
  }

  save.addEventListener("click", doSave);
  close.addEventListener("click", requestClose);
  area.addEventListener("input", () => {
    state.textContent = area.value === saved ? "" : "Unsaved changes";
  });
  dialog.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      doSave();
    }
  });
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault(); // Escape asks first when there are unsaved changes
    requestClose();
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  area.focus();
}
