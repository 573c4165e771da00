// The server page's CPU and memory charts of the last hour, from GET /server/<id>/stats/history.

import { getJson } from "./api.js";
import { h } from "./dom.js";
import { bytes, percent } from "./format.js";
import { currentNode } from "./node.js";
import { poll } from "./poll.js";
import { createTimeChart } from "./timechart.js";

const REFRESH_MS = 5000; // the daemon samples every 5 s
const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const CPU_AXIS = { format: percent, unit: () => ({ size: 1, suffix: "%" }), floor: 10 };
const MEMORY_AXIS = {
  format: bytes,
  unit: (top) => (top >= GIB ? { size: GIB, suffix: " GiB" } : { size: MIB, suffix: " MiB" }),
  floor: MIB,
};

/** Append the two charts to `container` and keep them current; returns the function that stops refreshing. */
export function mountUsageCharts(container, id) {
  const node = currentNode();
  const cpu = createTimeChart({ title: "CPU", className: "cpu", axis: CPU_AXIS });
  const memory = createTimeChart({ title: "Memory", className: "memory", axis: MEMORY_AXIS });
  container.append(h("section", { class: "usage-charts", "aria-label": `Resource use of ${id}, last hour` },
    cpu.element, memory.element));
  const poller = poll(async () => {
    const { interval, samples } = await getJson(`/server/${encodeURIComponent(id)}/stats/history`, undefined, node);
    cpu.update(samples.map((sample) => ({ time: sample.time, value: sample.cpuUsage })), interval);
    memory.update(samples.map((sample) => ({ time: sample.time, value: sample.memoryUsage })), interval);
  }, REFRESH_MS);
  return () => poller.stop();
}
