// One server's page: its live card on top, then the Console or Files tab
// (each offered only to an account that may use it).

import { ApiError } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { mountConsole } from "./console.js";
import { mountFiles } from "./files.js";
import { mayOn } from "./me.js";
import { currentNode, serverHref } from "./node.js";
import { poll } from "./poll.js";
import { createServerCard, fetchServer } from "./servercard.js";

const REFRESH_MS = 3000;

export function mountServerPage(section, id, { tab, path }) {
  const base = serverHref(id);
  const node = currentNode();
  const card = createServerCard(id, { linkName: false, onChanged: () => poller.now() });
  const allowed = { console: mayOn(id, "console.view"), files: mayOn(id, "files.view") };
  const tabLink = (name, label, href) => allowed[name] ? h("a", {
    href, text: label, class: "tab", "aria-current": tab === name ? "page" : null,
  }) : null;
  const panel = h("div", { class: "tab-panel" });
  section.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/", text: "Servers" }), " / ", node ? `${node.name} / ${id}` : id),
    card.element,
    h("nav", { class: "tabs", "aria-label": `${id} sections` },
      tabLink("console", "Console", base), tabLink("files", "Files", `${base}/files/`)),
    panel);
  let stopTab = () => {};
  const poller = poll(async () => {
    try {
      card.update(await fetchServer(id));
    } catch (failure) {
      if (!(failure instanceof ApiError) || failure.status !== 404) throw failure;
      // Removed from the config (or a mistyped link): say so instead of polling a missing server.
      poller.stop();
      stopTab();
      replaceChildren(section, h("h1", { text: `No server named ${id}` }),
        h("p", { text: failure.message }), h("p", {}, h("a", { href: "#/", text: "Back to servers" })));
    }
  }, REFRESH_MS);
  if (!allowed[tab]) {
    panel.append(h("p", { class: "notice", text: `You may not use the ${tab === "files" ? "files" : "console"} of ${id}.` }));
  } else {
    stopTab = tab === "files" ? mountFiles(panel, id, path) : mountConsole(panel, id);
  }
  return () => {
    poller.stop();
    stopTab();
  };
}
