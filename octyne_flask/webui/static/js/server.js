// One server's page: its live card on top, then the Console or Files tab.

import { h } from "./dom.js";
import { mountConsole } from "./console.js";
import { mountFiles } from "./files.js";
import { createServerCard, fetchServer, poll } from "./servercard.js";

const REFRESH_MS = 3000;

export function mountServerPage(section, id, { tab, path }) {
  const base = `#/server/${encodeURIComponent(id)}`;
  const card = createServerCard(id, { linkName: false, onChanged: () => poller.now() });
  const tabLink = (name, label, href) => h("a", {
    href, text: label, class: "tab", "aria-current": tab === name ? "page" : null,
  });
  const panel = h("div", { class: "tab-panel" });
  section.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/", text: "Servers" }), " / ", id),
    card.element,
    h("nav", { class: "tabs", "aria-label": `${id} sections` },
      tabLink("console", "Console", base), tabLink("files", "Files", `${base}/files/`)),
    panel);
  const poller = poll(async () => card.update(await fetchServer(id)), REFRESH_MS);
  const stopTab = tab === "files" ? mountFiles(panel, id, path) : mountConsole(panel, id);
  return () => {
    poller.stop();
    stopTab();
  };
}
