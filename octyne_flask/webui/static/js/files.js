// The files tab: breadcrumbs, a sortable listing with per-item actions, bulk
// actions on a selection, uploads (picker or drag and drop) with progress.

import { ApiError } from "./api.js";
import { archiveSuffix, compressFlow, decompressFlow } from "./archives.js";
import { confirmDialog, promptDialog } from "./dialogs.js";
import { h, replaceChildren, toast } from "./dom.js";
import { openEditor } from "./editor.js";
import {
  createFolder, deletePath, downloadUrl, joinPath, listFolder, moveOrCopy, parentPath, runBatch, upload,
} from "./fileapi.js";
import { bytes, date } from "./format.js";
import { icon } from "./icons.js";
import { createTaskList } from "./tasks.js";

const COLUMNS = [
  { key: "name", label: "Name" },
  { key: "size", label: "Size" },
  { key: "lastModified", label: "Modified" },
];

/** The dashboard link of `folder` on server `id`. */
export function folderHref(id, folder) {
  const segments = folder.split("/").filter(Boolean).map(encodeURIComponent);
  return `#/server/${encodeURIComponent(id)}/files/${segments.join("/")}`;
}

/** `name` for an entry in `folder`, or a path as typed: absolute, or relative to `folder`. */
function resolveTarget(folder, typed) {
  return typed.startsWith("/") ? typed : joinPath(folder, typed);
}

function compareEntries(key, direction) {
  return (a, b) => {
    if (a.folder !== b.folder) return a.folder ? -1 : 1;
    const order = key === "name"
      ? a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" })
      : (a[key] - b[key]) || a.name.localeCompare(b.name);
    return order * direction;
  };
}

/** Run a file action; API errors become a toast, success reloads the listing. */
async function attempt(action, reload, success) {
  try {
    await action();
    if (success) toast(success);
  } catch (failure) {
    if (failure instanceof ApiError) toast(failure.message, "error");
    else return;
  }
  await reload();
}

export function mountFiles(container, id, path) {
  const folder = `/${path.split("/").filter(Boolean).join("/")}`;
  const sort = { key: "name", direction: 1 };
  const selected = new Set();
  let entries = [];
  let active = true;

  const tasks = createTaskList();
  const picker = h("input", { type: "file", multiple: true, hidden: true, "aria-hidden": "true", tabindex: "-1" });
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select all" });
  const headRow = h("tr");
  const body = h("tbody");
  const selectionCount = h("span", { class: "selection-count" });
  const selectionBar = h("div", { class: "selection-bar", role: "group", "aria-label": "Selected items", hidden: true },
    selectionCount,
    h("button", { type: "button", class: "secondary", text: "Move…", onclick: () => bulkTransfer("mv") }),
    h("button", { type: "button", class: "secondary", text: "Copy…", onclick: () => bulkTransfer("cp") }),
    h("button", { type: "button", class: "secondary", text: "Compress…", onclick: () => compressSelected() }),
    h("button", { type: "button", class: "danger", text: "Delete…", onclick: () => bulkDelete() }));
  const message = h("p", { class: "empty", hidden: true });
  const dropHint = h("div", { class: "drop-hint", text: `Drop files to upload them to ${folder}` });
  const table = h("table", { class: "files" },
    h("caption", { class: "visually-hidden", text: `Files in ${folder}` }), h("thead", {}, headRow), body);
  const dropZone = h("div", { class: "drop-zone" }, table, message, dropHint);

  container.append(
    breadcrumbs(),
    h("div", { class: "toolbar" },
      h("button", { type: "button", class: "primary", text: "Upload…", onclick: () => picker.click() }),
      h("button", { type: "button", class: "secondary", text: "New folder…", onclick: newFolder }),
      h("button", { type: "button", class: "secondary", text: "Refresh", onclick: () => reload() }),
      picker),
    selectionBar, tasks.element, dropZone);

  function breadcrumbs() {
    const parts = folder.split("/").filter(Boolean);
    const items = [h("li", {}, h("a", { href: folderHref(id, "/"), text: id, "aria-current": parts.length ? null : "page" }))];
    parts.forEach((part, index) => {
      const target = `/${parts.slice(0, index + 1).join("/")}`;
      items.push(h("li", {}, h("a", { href: folderHref(id, target), text: part, "aria-current": index === parts.length - 1 ? "page" : null })));
    });
    return h("nav", { class: "breadcrumbs", "aria-label": "Folder" }, h("ol", {}, items));
  }

  function renderHead() {
    const cells = [h("th", { class: "select" }, selectAll)];
    for (const column of COLUMNS) {
      const current = sort.key === column.key;
      const arrow = current ? (sort.direction === 1 ? " ▲" : " ▼") : "";
      cells.push(h("th", { scope: "col", class: column.key, "aria-sort": current ? (sort.direction === 1 ? "ascending" : "descending") : null },
        h("button", {
          type: "button", class: "sort", text: column.label + arrow,
          onclick: () => {
            sort.direction = current ? -sort.direction : 1;
            sort.key = column.key;
            render();
          },
        })));
    }
    cells.push(h("th", { scope: "col", class: "row-actions", text: "Actions" }));
    replaceChildren(headRow, cells);
  }

  function actionButton(label, handler, kind = "") {
    return h("button", { type: "button", class: `menu-item ${kind}`, text: label, onclick: handler });
  }

  function rowActions(entry) {
    const target = joinPath(folder, entry.name);
    const items = [];
    if (!entry.folder) items.push(actionButton("Download", () => download(entry)));
    if (!entry.folder) items.push(actionButton("Edit", () => openEditor(id, folder, entry, reload)));
    if (!entry.folder && archiveSuffix(entry.name)) {
      items.push(actionButton("Decompress…", async () => {
        if (await decompressFlow(id, folder, entry.name, tasks)) await reload();
      }));
    }
    items.push(actionButton("Rename / move…", () => transferOne(entry, "mv")));
    items.push(actionButton("Copy…", () => transferOne(entry, "cp")));
    items.push(actionButton("Compress…", async () => {
      if (await compressFlow(id, folder, [entry.name], tasks)) await reload();
    }));
    items.push(actionButton("Delete…", async () => {
      const sure = await confirmDialog({
        title: `Delete ${entry.name}?`,
        message: entry.folder ? `The folder ${target} and everything in it will be deleted.` : `${target} will be deleted.`,
        confirmLabel: "Delete",
      });
      if (sure) await attempt(() => deletePath(id, target), reload, `Deleted ${entry.name}`);
    }, "danger"));
    const menu = h("details", { class: "menu" },
      h("summary", { "aria-label": `Actions for ${entry.name}`, title: "Actions", text: "⋯" }),
      h("div", { class: "menu-items" }, items));
    menu.addEventListener("click", (event) => {
      if (event.target.closest(".menu-item")) menu.open = false;
    });
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
    return menu;
  }

  function render() {
    renderHead();
    const sorted = [...entries].sort(compareEntries(sort.key, sort.direction));
    replaceChildren(body, sorted.map((entry) => {
      const box = h("input", { type: "checkbox", "aria-label": `Select ${entry.name}`, checked: selected.has(entry.name) });
      box.addEventListener("change", () => {
        if (box.checked) selected.add(entry.name);
        else selected.delete(entry.name);
        updateSelection();
      });
      const name = entry.folder
        ? h("a", { href: folderHref(id, joinPath(folder, entry.name)) }, icon("folder"), entry.name)
        : h("span", {}, icon("file"), entry.name);
      return h("tr", { "data-name": entry.name },
        h("td", { class: "select" }, box),
        h("td", { class: "name" }, name),
        h("td", { class: "size", text: entry.folder ? "—" : bytes(entry.size) }),
        h("td", { class: "lastModified", text: date(entry.lastModified) }),
        h("td", { class: "row-actions" }, rowActions(entry)));
    }));
    message.hidden = entries.length > 0;
    message.textContent = "This folder is empty. Drop files here or use Upload.";
    updateSelection();
  }

  function updateSelection() {
    selectionBar.hidden = selected.size === 0;
    selectionCount.textContent = `${selected.size} selected`;
    selectAll.checked = entries.length > 0 && selected.size === entries.length;
    selectAll.indeterminate = selected.size > 0 && selected.size < entries.length;
  }

  selectAll.addEventListener("change", () => {
    selected.clear();
    if (selectAll.checked) for (const entry of entries) selected.add(entry.name);
    render();
  });

  async function reload() {
    try {
      entries = await listFolder(id, folder);
    } catch (failure) {
      if (!(failure instanceof ApiError) || !active) return;
      entries = [];
      table.hidden = true;
      message.hidden = false;
      replaceChildren(message, `${failure.message} `, h("a", { href: folderHref(id, "/"), text: "Go to the top folder" }));
      return;
    }
    if (!active) return;
    table.hidden = false;
    const names = new Set(entries.map((entry) => entry.name));
    for (const name of [...selected]) if (!names.has(name)) selected.delete(name);
    render();
  }

  async function download(entry) {
    try {
      const link = h("a", { href: await downloadUrl(id, joinPath(folder, entry.name)), download: entry.name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (failure) {
      if (failure instanceof ApiError) toast(failure.message, "error");
    }
  }

  async function newFolder() {
    const name = await promptDialog({ title: "New folder", label: "Folder name or path", confirmLabel: "Create" });
    if (name) await attempt(() => createFolder(id, resolveTarget(folder, name)), reload, `Created ${name}`);
  }

  async function transferOne(entry, operation) {
    const verb = operation === "mv" ? "Rename or move" : "Copy";
    const typed = await promptDialog({
      title: `${verb} ${entry.name}`,
      label: "New name, or a path (starting with / for the server folder)",
      value: operation === "mv" ? entry.name : `copy of ${entry.name}`,
      confirmLabel: operation === "mv" ? "Move" : "Copy",
    });
    if (!typed || typed === entry.name) return;
    const src = joinPath(folder, entry.name);
    await attempt(() => moveOrCopy(id, operation, src, resolveTarget(folder, typed)), reload,
      `${operation === "mv" ? "Moved" : "Copied"} ${entry.name}`);
  }

  async function bulkTransfer(operation) {
    const names = [...selected];
    const typed = await promptDialog({
      title: `${operation === "mv" ? "Move" : "Copy"} ${names.length} item(s)`,
      label: "Into the folder",
      value: folder === "/" ? "/" : parentPath(folder),
      confirmLabel: operation === "mv" ? "Move" : "Copy",
    });
    if (!typed) return;
    const destination = resolveTarget(folder, typed);
    const operations = names.map((name) => ({ operation, src: joinPath(folder, name), dest: joinPath(destination, name) }));
    await attempt(() => runBatch(id, operations), reload, `${operation === "mv" ? "Moved" : "Copied"} ${names.length} item(s)`);
  }

  async function bulkDelete() {
    const names = [...selected];
    const sure = await confirmDialog({
      title: `Delete ${names.length} item(s)?`,
      message: `${names.join(", ")} will be deleted, folders with everything in them.`,
      confirmLabel: "Delete",
    });
    if (!sure) return;
    const operations = names.map((name) => ({ operation: "rm", path: joinPath(folder, name) }));
    await attempt(() => runBatch(id, operations), reload, `Deleted ${names.length} item(s)`);
  }

  async function compressSelected() {
    if (await compressFlow(id, folder, [...selected], tasks)) await reload();
  }

  async function uploadAll(files) {
    const existing = files.filter((file) => entries.some((entry) => entry.name === file.name));
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
        if (!(failure instanceof ApiError)) return;
      }
    }
    await reload();
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
    const items = [...event.dataTransfer.items];
    const folders = items.filter((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()?.isDirectory);
    if (folders.length) toast("Folders cannot be uploaded directly; compress them first or upload their files.", "error");
    const files = items.filter((item) => item.kind === "file" && !folders.includes(item)).map((item) => item.getAsFile());
    uploadAll(files.filter(Boolean));
  });

  reload();
  return () => {
    active = false;
  };
}
