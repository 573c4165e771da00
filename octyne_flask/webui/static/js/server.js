// One server's page: its live card and its CPU and memory charts of the last hour on top, then the
// Console, Files, Backups or Schedules tab (each offered only to an account that may use it).

import { ApiError } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { mountBackups } from "./backups.js";
import { mountConsole } from "./console.js";
import { mountFiles } from "./files.js";
import { mayOn } from "./me.js";
import { currentNode, serverHref } from "./node.js";
import { poll } from "./poll.js";
import { mountSchedules } from "./schedules.js";
import { createServerCard, fetchServer } from "./servercard.js";
import { mountUsageCharts } from "./usagecharts.js";

const REFRESH_MS = 3000;
const TABS = {
  console: { label: "Console", permission: "console.view", path: "", mount: mountConsole },
  files: { label: "Files", permission: "files.view", path: "/files/", mount: mountFiles },
  backups: { label: "Backups", permission: "backups.view", path: "/backups", mount: mountBackups },
  schedules: { label: "Schedules", permission: "schedules.view", path: "/schedules", mount: mountSchedules },
};

export function mountServerPage(section, id, { tab, path }) {
  const base = serverHref(id);
  const node = currentNode();
  const card = createServerCard(id, { linkName: false, sparklines: false, onChanged: () => poller.now() });
  const allowed = Object.fromEntries(Object.entries(TABS).map(([name, { permission }]) => [name, mayOn(id, permission)]));
  const tabLink = (name) => allowed[name] ? h("a", {
    href: base + TABS[name].path, text: TABS[name].label, class: "tab", "aria-current": tab === name ? "page" : null,
  }) : null;
  const panel = h("div", { class: "tab-panel" });
  const charts = h("div");
  section.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/", text: "Servers" }), " / ", node ? `${node.name} / ${id}` : id),
    card.element,
    charts,
    h("nav", { class: "tabs", "aria-label": `${id} sections` },
      Object.keys(TABS).map(tabLink)),
    panel);
  let stopTab = () => {};
  const stopCharts = mountUsageCharts(charts, id);
  const poller = poll(async () => {
    try {
      card.update(await fetchServer(id));
    } catch (failure) {
      if (!(failure instanceof ApiError) || failure.status !== 404) throw failure;
      // Removed from the config (or a mistyped link): say so instead of polling a missing server.
      poller.stop();
      stopCharts();
      stopTab();
      replaceChildren(section, h("h1", { text: `No server named ${id}` }),
        h("p", { text: failure.message }), h("p", {}, h("a", { href: "#/", text: "Back to servers" })));
    }
  }, REFRESH_MS);
  if (!allowed[tab]) {
    panel.append(h("p", { class: "notice", text: `You may not use the ${TABS[tab].label.toLowerCase()} of ${id}.` }));
  } else {
    stopTab = TABS[tab].mount(panel, id, path);
  }
  return () => {
    poller.stop();
    stopCharts();
    stopTab();
  };
}
