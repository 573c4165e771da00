// The servers page: every server the user may see, refreshed every few seconds.

import { getJson } from "./api.js";
import { h } from "./dom.js";
import { poll } from "./poll.js";
import { createServerCard, fetchServer } from "./servercard.js";

const REFRESH_MS = 3000;

export function mountServerList(section) {
  const list = h("div", { class: "server-list" });
  // Access control may hide configured servers, so this does not claim there are none.
  const empty = h("p", { class: "empty", text: "No servers to show.", hidden: true });
  section.append(h("div", { class: "view-header" }, h("h1", { text: "Servers" })), empty, list);
  const cards = new Map();

  const poller = poll(async () => {
    const { servers } = await getJson("/servers", { extrainfo: "true" });
    const names = Object.keys(servers).sort((a, b) => a.localeCompare(b));
    const infos = await Promise.all(names.map((name) => fetchServer(name).catch(() => null)));
    for (const [name, card] of cards) {
      if (!(name in servers)) {
        card.element.remove();
        cards.delete(name);
      }
    }
    let position = 0;
    names.forEach((name, index) => {
      if (!infos[index]) return; // removed between the two requests
      if (!cards.has(name)) cards.set(name, createServerCard(name, { onChanged: () => poller.now() }));
      const card = cards.get(name);
      card.update(infos[index]);
      // Move a card only when it is out of place: moving a node takes focus away from its buttons.
      const occupant = list.children[position];
      if (occupant !== card.element) list.insertBefore(card.element, occupant || null);
      position += 1;
    });
    empty.hidden = names.length > 0;
  }, REFRESH_MS);

  return () => poller.stop();
}
