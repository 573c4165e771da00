// The servers page: every server the user may see on every node of the cluster
// (this node through the login cookie, the others at the URL they announce with
// the cluster token), refreshed every few seconds; a node that cannot be reached
// keeps its servers listed, greyed.

import { getJson } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { mayOn, summaryOf } from "./me.js";
import { clusterToken } from "./node.js";
import { poll } from "./poll.js";
import { createServerCard, fetchServer } from "./servercard.js";

const REFRESH_MS = 3000;
const ALL_NODES = "";

/** `/servers` with each server's details from one node; null when the node cannot be used now. */
async function loadNode(entry) {
  const node = entry.self ? null : { name: entry.name, url: entry.url };
  if (node && !(entry.online && entry.url && clusterToken())) return null;
  try {
    const { servers } = await getJson("/servers", { extrainfo: "true" }, node);
    const me = node ? await getJson("/access/me", {}, node).catch(() => null) : null; // none on Go Octyne
    const names = Object.keys(servers).sort((a, b) => a.localeCompare(b));
    const infos = await Promise.all(names.map((name) => fetchServer(name, node).catch(() => null)));
    const summary = summaryOf(me);
    const canControl = (id) => mayOn(id, "control", summary);
    return { node, canControl: node ? canControl : null, servers: names.map((name, index) => [name, infos[index]]) };
  } catch (failure) {
    if (!node) throw failure; // this node's own failures end the session or show the unreachable page
    return null;
  }
}

export function mountServerList(section) {
  const list = h("div", { class: "server-list" });
  // Access control may hide configured servers, so this does not claim there are none.
  const empty = h("p", { class: "empty", text: "No servers to show.", hidden: true });
  const filter = h("select", { id: "node-filter" });
  const nodeBar = h("div", { class: "node-bar", hidden: true },
    h("label", { for: "node-filter", text: "Node" }), filter,
    h("ul", { class: "node-states", "aria-label": "Nodes" }));
  // A node that joined after this login has no token to work with yet.
  const noToken = h("p", {
    class: "notice", hidden: true, text: "Log out and in again to see the servers of the other nodes.",
  });
  section.append(h("div", { class: "view-header" }, h("h1", { text: "Servers" })), nodeBar, noToken, empty, list);
  const cards = new Map(); // "<node>/<server>" -> {card, nodeName}
  let clustered = false;

  function applyFilter() {
    for (const { card, nodeName } of cards.values()) {
      card.element.hidden = filter.value !== ALL_NODES && filter.value !== nodeName;
    }
  }
  filter.addEventListener("change", applyFilter);

  function showNodes(nodes) {
    clustered = nodes.length > 1;
    nodeBar.hidden = !clustered;
    noToken.hidden = Boolean(clusterToken()) || !nodes.some((entry) => !entry.self && entry.url);
    const chosen = filter.value;
    const options = [h("option", { value: ALL_NODES, text: "All nodes" }),
      ...nodes.map((entry) => h("option", { value: entry.name, text: entry.name }))];
    if (filter.options.length !== options.length || [...filter.options].some((option, i) => option.value !== options[i].value)) {
      replaceChildren(filter, ...options);
      filter.value = nodes.some((entry) => entry.name === chosen) ? chosen : ALL_NODES;
    }
    replaceChildren(nodeBar.querySelector(".node-states"), ...nodes.map((entry) => h("li", {
      class: `node-state ${entry.online ? "online" : "offline"}`, "data-node": entry.name,
      text: `${entry.name}: ${entry.online ? "online" : "offline"}`,
    })));
  }

  const poller = poll(async () => {
    const nodes = await getJson("/nodes", {}, null);
    const loaded = await Promise.all(nodes.map(loadNode));
    showNodes(nodes);
    const seen = new Set();
    let position = 0;
    nodes.forEach((entry, index) => {
      const result = loaded[index];
      const prefix = `${entry.name}/`;
      if (!result) { // unreachable: its cards stay, greyed, in place
        for (const [key, { card }] of cards) {
          if (!key.startsWith(prefix)) continue;
          card.setOffline();
          seen.add(key);
          list.insertBefore(card.element, list.children[position] || null);
          position += 1;
        }
        return;
      }
      for (const [name, info] of result.servers) {
        if (!info) continue; // removed between the two requests
        const key = prefix + name;
        if (!cards.has(key)) {
          const card = createServerCard(name, {
            node: result.node, onChanged: () => poller.now(),
            ...(result.canControl ? { canControl: result.canControl(name) } : {}),
          });
          cards.set(key, { card, nodeName: entry.name });
        }
        const { card } = cards.get(key);
        card.setNodeLabel(clustered ? entry.name : null); // nodes may join after the card was made
        card.update(info);
        seen.add(key);
        // Move a card only when it is out of place: moving a node takes focus away from its buttons.
        const occupant = list.children[position];
        if (occupant !== card.element) list.insertBefore(card.element, occupant || null);
        position += 1;
      }
    });
    for (const [key, { card }] of cards) {
      if (!seen.has(key)) {
        card.element.remove();
        cards.delete(key);
      }
    }
    applyFilter();
    empty.hidden = cards.size > 0;
  }, REFRESH_MS);

  return () => poller.stop();
}
