// The Backups tab: every backup with its size, date and trigger; create one and
// watch its progress; download, restore (after a confirmation naming what is
// replaced) and delete.

import { apiUrl, getJson, request, ticket } from "./api.js";
import { confirmDialog } from "./dialogs.js";
import { h, replaceChildren, toast } from "./dom.js";
import { bytes } from "./format.js";
import { mayOn } from "./me.js";
import { poll } from "./poll.js";

const BUSY_MS = 1000;
const IDLE_MS = 5000;
const TRIGGERS = { manual: "Manual", schedule: "Schedule", "pre-restore": "Before a restore" };

export function mountBackups(panel, id) {
  const base = `/server/${encodeURIComponent(id)}/backups`;
  const table = h("tbody");
  const create = mayOn(id, "backups.create")
    ? h("button", { type: "button", class: "primary", text: "Create backup", onclick: () => act(createBackup) })
    : null;
  panel.append(
    h("div", { class: "toolbar" }, create),
    h("table", { class: "files backups" },
      h("thead", {}, h("tr", {}, ["Name", "Size", "Created", "Trigger", ""].map((text) => h("th", { text })))),
      table));
  let busy = false;
  let fetched = 0; // when the list was last fetched (ms); 0 forces the next tick to fetch

  async function act(action) {
    try {
      await action();
    } catch (failure) {
      toast(failure.message, "error");
    }
    fetched = 0;
    poller.now();
  }

  async function createBackup() {
    const { name } = await (await request("POST", base)).json();
    toast(`Backup ${name} started`);
  }

  async function download(name) {
    window.location.assign(apiUrl(`${base}/${encodeURIComponent(name)}`, { ticket: await ticket() }));
  }

  async function restore(name) {
    const confirmed = await confirmDialog({
      title: `Restore ${name}?`,
      message: `Everything in the folder of ${id} is replaced by the content of ${name} (paths excluded from `
        + "backups are kept). A backup of the current files is made first. The server must be stopped.",
      confirmLabel: "Restore",
    });
    if (!confirmed) return;
    await request("POST", `${base}/${encodeURIComponent(name)}/restore`);
    toast(`Restored ${name}`);
  }

  async function remove(name) {
    if (!await confirmDialog({ title: `Delete ${name}?`, message: "The archive is deleted for good.", confirmLabel: "Delete" })) return;
    await request("DELETE", `${base}/${encodeURIComponent(name)}`);
    toast(`Deleted ${name}`);
  }

  function row(backup) {
    const actions = h("div", { class: "actions" });
    if (backup.complete) {
      if (mayOn(id, "files.download")) actions.append(h("button", { type: "button", class: "secondary", text: "Download", onclick: () => act(() => download(backup.name)) }));
      if (mayOn(id, "backups.restore")) actions.append(h("button", { type: "button", class: "secondary", text: "Restore", onclick: () => act(() => restore(backup.name)) }));
      if (mayOn(id, "backups.delete")) actions.append(h("button", { type: "button", class: "danger", text: "Delete", onclick: () => act(() => remove(backup.name)) }));
    } else {
      actions.append(h("progress", { max: "1", value: String(backup.progress ?? 0), "aria-label": `Progress of ${backup.name}` }),
        ` ${Math.round((backup.progress ?? 0) * 100)}%`);
    }
    return h("tr", { dataset: { backup: backup.name } },
      h("td", { class: "name", text: backup.name }),
      h("td", { class: "size", text: bytes(backup.size) }),
      h("td", { class: "lastModified", text: new Date(backup.created).toLocaleString() }),
      h("td", { text: TRIGGERS[backup.trigger] || backup.trigger }),
      h("td", {}, actions));
  }

  // Ticks every second; the list is fetched that often only while a backup is being made.
  const poller = poll(async () => {
    if (!busy && Date.now() - fetched < IDLE_MS) return;
    fetched = Date.now();
    const { backups } = await getJson(base);
    busy = backups.some((backup) => !backup.complete);
    replaceChildren(table, backups.length ? backups.map(row)
      : h("tr", {}, h("td", { colspan: "5", class: "notice", text: "No backups yet." })));
  }, BUSY_MS);
  return () => poller.stop();
}
