// The Schedules tab: each schedule with its cron (and the daemon's reading of it in
// words, in the daemon's time zone), next run and last outcome, and
// "Run now". Schedules are edited in the config (the tab links there).

import { getJson, request } from "./api.js";
import { h, replaceChildren, toast } from "./dom.js";
import { may, mayOn } from "./me.js";
import { poll } from "./poll.js";

const REFRESH_MS = 2000;
const ACTIONS = {
  start: "Start", stop: "Stop", restart: "Restart", kill: "Kill", command: "Console command", backup: "Backup",
};

function lastRun(last) {
  if (!last) return "Not run yet";
  return `${last.outcome} · ${new Date(last.time).toLocaleString()} · ${last.message}`;
}

export function mountSchedules(panel, id) {
  const base = `/server/${encodeURIComponent(id)}/schedules`;
  const table = h("tbody");
  panel.append(
    h("p", { class: "notice" }, "Schedules are set under ", h("code", { text: `servers.${id}.schedules` }),
      " in the config", may("config.view") ? [" (", h("a", { href: "#/config", text: "edit the config" }), ")"] : null, "."),
    h("table", { class: "files schedules" },
      h("thead", {}, h("tr", {}, ["Name", "Action", "When", "Next run", "Last run", ""].map((text) => h("th", { text })))),
      table));

  async function runNow(name) {
    try {
      await request("POST", `${base}/${encodeURIComponent(name)}/run`);
      toast(`Schedule ${name} started`);
    } catch (failure) {
      toast(failure.message, "error");
    }
    poller.now();
  }

  function row(schedule) {
    const run = mayOn(id, "schedules.run")
      ? h("button", { type: "button", class: "secondary", text: "Run now", onclick: () => runNow(schedule.name) })
      : null;
    return h("tr", { dataset: { schedule: schedule.name } },
      h("td", { class: "name", text: schedule.name }),
      h("td", { text: ACTIONS[schedule.action] || schedule.action }),
      h("td", { class: "when" }, h("span", { text: schedule.description || schedule.cron }), " ",
        h("code", { class: "cron", text: schedule.cron })),
      h("td", { class: "lastModified", text: schedule.next ? new Date(schedule.next).toLocaleString() : "—" }),
      h("td", { class: `outcome ${schedule.last ? schedule.last.outcome : ""}`, text: lastRun(schedule.last) }),
      h("td", {}, h("div", { class: "actions" }, run)));
  }

  const poller = poll(async () => {
    const schedules = await getJson(base);
    replaceChildren(table, schedules.length ? schedules.map(row)
      : h("tr", {}, h("td", { colspan: "6", class: "notice", text: "No schedules." })));
  }, REFRESH_MS);
  return () => poller.stop();
}
