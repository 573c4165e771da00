// One server's live status, numbers, sparklines (on the list) and start/stop/kill buttons;
// built once and updated in place so keyboard focus survives every refresh.

import { ApiError, getJson, sendText } from "./api.js";
import { confirmDialog } from "./dialogs.js";
import { h, toast } from "./dom.js";
import { bytes, limitsText, percent, statusName, uptime } from "./format.js";
import { mayOn } from "./me.js";
import { currentNode, serverHref } from "./node.js";
import { createSparkline } from "./sparkline.js";
import { recordSample } from "./stats.js";

const STATUS_CLASSES = { 0: "stopped", 1: "running", 2: "crashed" };

/**
 * `GET /server/<id>?extrainfo=true` (on `node`, default the page's): status, uptime (ns), cpuUsage,
 * memoryUsage, totalMemory (the memory limit when one is set), toDelete, and our additions: limits and
 * outOfMemory (the last run was OOM-killed).
 */
export function fetchServer(id, node = currentNode()) {
  return getJson(`/server/${encodeURIComponent(id)}`, { extrainfo: "true" }, node);
}

/** Send START, TERM or KILL; toasts the outcome. */
async function control(id, operation, node) {
  try {
    const result = await sendText("POST", `/server/${encodeURIComponent(id)}`, operation, undefined, node);
    if (result.success === false) toast(`Server ${id} could not be started.`, "error");
  } catch (failure) {
    if (failure instanceof ApiError) toast(`${operation} ${id}: ${failure.message}`, "error");
    throw failure;
  }
}

function stat(label, value, chart = null) {
  return h("div", { class: "stat" }, h("dt", { text: label }), h("dd", {}, value), chart ? h("dd", { class: "chart" }, chart) : null);
}

/**
 * Build the card. `onChanged()` is called after a control action so the
 * owner refreshes at once instead of waiting for its next poll. Without the
 * `control` permission on the server (`canControl`) the card has no start/stop/kill buttons.
 * `node`: the cluster node the server runs on (null: this one). `sparklines: false` leaves out the small
 * charts (the server page draws full ones).
 */
export function createServerCard(id, {
  linkName = true, onChanged = () => {}, node = currentNode(), canControl = mayOn(id, "control"), sparklines = true,
} = {}) {
  const where = node ? ` on ${node.name}` : "";
  const badge = h("span", { class: "badge", "data-testid": "status", text: "…" });
  const tag = h("span", { class: "node-tag", "data-testid": "node" });
  const uptimeValue = h("span", { text: "—" });
  const cpuValue = h("span", { text: "—" });
  const memoryValue = h("span", { text: "—" });
  const memoryBar = h("meter", { class: "memory-bar", min: "0", value: "0", "aria-label": `Memory of ${id} used` });
  const limitsValue = h("span", { class: "limits", text: "—" });
  const cpuChart = sparklines ? createSparkline("cpu") : null;
  const memoryChart = sparklines ? createSparkline("memory") : null;
  const act = (operation) => async () => {
    await control(id, operation, node).catch(() => {});
    onChanged();
  };
  const start = h("button", { type: "button", class: "primary", text: "Start", onclick: act("START") });
  const stop = h("button", { type: "button", class: "secondary", text: "Stop", onclick: act("TERM") });
  const kill = h("button", {
    type: "button", class: "danger", text: "Kill",
    onclick: async () => {
      const sure = await confirmDialog({
        title: `Kill ${id}?`,
        message: "The process gets SIGKILL at once and cannot save anything. Use Stop for a clean shutdown.",
        confirmLabel: "Kill",
      });
      if (sure) await act("KILL")();
    },
  });
  for (const button of [start, stop, kill]) button.setAttribute("aria-label", `${button.textContent} ${id}${where}`);
  const name = linkName
    ? h("a", { href: serverHref(id, "", node), text: id })
    : h("span", { text: id });
  const element = h("article", {
    class: "server-card", "data-server": id, "data-node": node ? node.name : null, "aria-label": `Server ${id}${where}`,
  },
    h("header", {}, h("h2", { class: "server-name" }, name), tag, badge),
    h("dl", { class: "stats" },
      stat("Uptime", uptimeValue),
      stat("CPU", cpuValue, cpuChart?.element),
      stat("Memory", [memoryValue, memoryBar], memoryChart?.element),
      stat("Limits", limitsValue)),
    canControl ? h("div", { class: "actions" }, start, stop, kill) : null);

  /** Name the node on the card (null: no tag, the cluster is this node alone). */
  function setNodeLabel(label) {
    tag.textContent = label || "";
    tag.hidden = !label;
  }
  setNodeLabel(null);

  /** The server's node cannot be reached: keep the card, greyed, with nothing to press. */
  function setOffline() {
    element.classList.add("offline");
    badge.textContent = "Node offline";
    badge.className = "badge offline";
    element.dataset.status = "offline";
    for (const value of [uptimeValue, cpuValue, memoryValue, limitsValue]) value.textContent = "—";
    for (const button of [start, stop, kill]) button.disabled = true;
  }

  function update(info) {
    element.classList.remove("offline");
    const series = recordSample(node ? `${node.name}/${id}` : id, info);
    const running = info.status === 1;
    const limits = info.limits || {};
    const oomKilled = info.status === 2 && info.outOfMemory === true;
    badge.textContent = statusName(info.status, info.toDelete) + (oomKilled ? " · out of memory" : "");
    badge.className = `badge ${STATUS_CLASSES[info.status] || ""}${info.toDelete ? " deleting" : ""}`;
    element.dataset.status = String(info.status);
    uptimeValue.textContent = running ? uptime(info.uptime) : "—";
    cpuValue.textContent = running
      ? percent(info.cpuUsage) + (limits.cpu ? ` of ${percent(limits.cpu * 100)} limit` : "") : "—";
    memoryValue.textContent = running
      ? `${bytes(info.memoryUsage)} of ${bytes(info.totalMemory)}${limits.memory ? " limit" : ""}` : "—";
    memoryBar.max = info.totalMemory || 1;
    memoryBar.high = memoryBar.max * 0.9;
    memoryBar.value = running ? info.memoryUsage : 0;
    memoryBar.hidden = !running;
    limitsValue.textContent = limitsText(limits);
    cpuChart?.update(series.map((sample) => sample.cpu), 100, `CPU, last ${series.length} samples`);
    memoryChart?.update(series.map((sample) => sample.memory), 0, `Memory, last ${series.length} samples`);
    start.disabled = running;
    stop.disabled = !running;
    kill.disabled = !running;
  }

  return { element, update, setOffline, setNodeLabel };
}
