// The files tab: breadcrumbs, a sortable listing with per-item actions, bulk
// actions on a selection, uploads (picker or drag and drop) with progress.
// Actions the account may not use on this server are left out.

import { ApiError } from "./api.js";
import { archiveSuffix } from "./archives.js";
import { h, replaceChildren } from "./dom.js";
import { openEditor } from "./editor.js";
import { createFileActions } from "./fileactions.js";
import { joinPath, listFolder } from "./fileapi.js";
import { bytes, date } from "./format.js";
import { icon } from "./icons.js";
import { mayOn } from "./me.js";
import { serverHref } from "./node.js";
import { createSftpPanel } from "./sftp.js";
import { createTaskList } from "./tasks.js";
import { acceptUploads } from "./uploads.js";

const COLUMNS = [
  { key: "name", label: "Name" },
  { key: "size", label: "Size" },
  { key: "lastModified", label: "Modified" },
];

/** The dashboard link of `folder` on server `id`. */
function folderHref(id, folder) {
  const segments = folder.split("/").filter(Boolean).map(encodeURIComponent);
  return serverHref(id, `/files/${segments.join("/")}`);
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

export function mountFiles(container, id, path) {
  const folder = `/${path.split("/").filter(Boolean).join("/")}`;
  const sort = { key: "name", direction: 1 };
  const selected = new Set();
  let entries = [];
  let active = true;

  const can = (name) => mayOn(id, `files.${name}`);
  const tasks = createTaskList();
  const actions = createFileActions({ id, folder, tasks, reload });
  const picker = h("input", { type: "file", multiple: true, hidden: true, "aria-hidden": "true", tabindex: "-1" });
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select all" });
  const headRow = h("tr");
  const body = h("tbody");
  const selectionCount = h("span", { class: "selection-count" });
  const selectionBar = h("div", { class: "selection-bar", role: "group", "aria-label": "Selected items", hidden: true },
    selectionCount,
    can("modify") ? h("button", { type: "button", class: "secondary", text: "Move…", onclick: () => actions.bulkTransfer([...selected], "mv") }) : null,
    can("modify") ? h("button", { type: "button", class: "secondary", text: "Copy…", onclick: () => actions.bulkTransfer([...selected], "cp") }) : null,
    can("compress") ? h("button", { type: "button", class: "secondary", text: "Compress…", onclick: () => actions.compress([...selected]) }) : null,
    can("modify") ? h("button", { type: "button", class: "danger", text: "Delete…", onclick: () => actions.bulkDelete([...selected]) }) : null);
  const message = h("p", { class: "empty", hidden: true });
  const dropHint = h("div", { class: "drop-hint", text: `Drop files to upload them to ${folder}` });
  const table = h("table", { class: "files" },
    h("caption", { class: "visually-hidden", text: `Files in ${folder}` }), h("thead", {}, headRow), body);
  const dropZone = h("div", { class: "drop-zone" }, table, message, dropHint);

  container.append(
    createSftpPanel(id),
    breadcrumbs(),
    h("div", { class: "toolbar" },
      can("upload") ? h("button", { type: "button", class: "primary", text: "Upload…", onclick: () => picker.click() }) : null,
      can("createFolder") ? h("button", { type: "button", class: "secondary", text: "New folder…", onclick: () => actions.newFolder() }) : null,
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
    const items = [];
    const file = !entry.folder;
    if (file && can("download")) items.push(actionButton("Download", () => actions.download(entry)));
    if (file && can("download") && can("upload")) items.push(actionButton("Edit", () => openEditor(id, folder, entry, reload)));
    if (file && archiveSuffix(entry.name) && can("decompress")) items.push(actionButton("Decompress…", () => actions.decompress(entry)));
    if (can("modify")) items.push(actionButton("Rename / move…", () => actions.transfer(entry, "mv")));
    if (can("modify")) items.push(actionButton("Copy…", () => actions.transfer(entry, "cp")));
    if (can("compress")) items.push(actionButton("Compress…", () => actions.compress([entry.name])));
    if (can("modify")) items.push(actionButton("Delete…", () => actions.remove(entry), "danger"));
    if (!items.length) return null;
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
    message.textContent = can("upload") ? "This folder is empty. Drop files here or use Upload." : "This folder is empty.";
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

  if (can("upload")) {
    acceptUploads({
      id, folder, picker, dropZone, tasks, existingNames: () => entries.map((entry) => entry.name), onDone: reload,
    });
  }

  reload();
  return () => {
    active = false;
  };
}
