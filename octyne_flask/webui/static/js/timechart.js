// A line chart of one measure over time in SVG: a value axis with units, a clock-time axis, and the
// sample under the pointer (or picked with the arrow keys) read out below it.

import { h, svg } from "./dom.js";

const WIDTH = 640;
const HEIGHT = 200;
const LEFT = 62; // room for the value labels
const RIGHT = 12;
const TOP = 10;
const BOTTOM = 24; // room for the time labels
const PLOT_WIDTH = WIDTH - LEFT - RIGHT;
const PLOT_HEIGHT = HEIGHT - TOP - BOTTOM;
const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const MIN_SPAN = 2 * MINUTE; // a server that started a minute ago still gets a readable time axis
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60].map((minutes) => minutes * MINUTE);
const GAP_INTERVALS = 2.5; // samples further apart than this many intervals: the server was not running between

/** The smallest 1, 2 or 5 x 10^n step that covers 0..max in at most `count` steps. */
function niceStep(max, count) {
  const rough = max / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 5, 10].map((factor) => factor * power).find((step) => step * count >= max);
}

function clock(time, seconds = false) {
  const parts = { hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined };
  return new Date(time).toLocaleTimeString([], parts);
}

/**
 * `axis`: `{ format(value) -> text with unit, unit(max) -> { size, suffix }, floor }`: how a value reads,
 * the unit of the axis labels for a given top value, and the least top value (a flat series stays low).
 * Returns `{ element, update(points, intervalMs) }`; `points` are `{ time (ms), value }`, oldest first.
 */
export function createTimeChart({ title, className, axis }) {
  const root = svg("svg", {
    class: `time-chart ${className}`, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", tabindex: "0",
    "aria-label": `${title}: no samples`,
  });
  const grid = svg("g", { class: "chart-grid" });
  const area = svg("path", { class: "chart-area" });
  const line = svg("path", { class: "chart-line" });
  const guide = svg("line", { class: "chart-guide", y1: TOP, y2: TOP + PLOT_HEIGHT, visibility: "hidden" });
  const dot = svg("circle", { class: "chart-dot", r: 3.5, visibility: "hidden" });
  const overlay = svg("rect", {
    class: "chart-overlay", x: LEFT, y: TOP, width: PLOT_WIDTH, height: PLOT_HEIGHT, fill: "transparent",
  });
  root.append(grid, area, line, guide, dot, overlay);
  const readout = h("p", { class: "chart-readout", "aria-live": "polite", "data-testid": "readout" });
  const element = h("figure", { class: `chart ${className}` }, h("figcaption", { text: title }), root, readout);

  let points = [];
  let toX = () => 0;
  let fromX = () => 0;
  let toY = () => 0;
  let picked = null; // index of the sample being read out; null: the latest

  function describe(index) {
    const point = points[index];
    return `${clock(point.time, true)}: ${axis.format(point.value)}`;
  }

  function show(index) {
    picked = index;
    if (index === null || points.length === 0) {
      guide.setAttribute("visibility", "hidden");
      dot.setAttribute("visibility", "hidden");
      readout.textContent = points.length ? `Latest ${describe(points.length - 1)}` : "No samples in the last hour.";
      return;
    }
    const x = toX(points[index].time);
    const y = toY(points[index].value);
    guide.setAttribute("x1", x);
    guide.setAttribute("x2", x);
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
    guide.setAttribute("visibility", "visible");
    dot.setAttribute("visibility", "visible");
    readout.textContent = describe(index);
  }

  function nearest(time) {
    let best = 0;
    points.forEach((point, index) => {
      if (Math.abs(point.time - time) < Math.abs(points[best].time - time)) best = index;
    });
    return best;
  }

  overlay.addEventListener("pointermove", (event) => {
    if (points.length === 0) return;
    const box = root.getBoundingClientRect();
    show(nearest(fromX(((event.clientX - box.left) / box.width) * WIDTH)));
  });
  overlay.addEventListener("pointerleave", () => show(null));
  root.addEventListener("blur", () => show(null));
  root.addEventListener("keydown", (event) => {
    if (points.length === 0) return;
    const last = points.length - 1;
    const current = picked === null ? last : picked;
    const moves = { ArrowLeft: current - 1, ArrowRight: current + 1, Home: 0, End: last };
    if (!(event.key in moves)) return;
    event.preventDefault();
    show(Math.min(last, Math.max(0, moves[event.key])));
  });

  function drawAxes(start, end, top, step, unit) {
    grid.replaceChildren();
    for (let value = 0; value <= top * 1.001; value += step) {
      const y = toY(value);
      grid.append(svg("line", { class: "chart-rule", x1: LEFT, x2: LEFT + PLOT_WIDTH, y1: y, y2: y }));
      const label = svg("text", { class: "chart-label", x: LEFT - 6, y: y + 4, "text-anchor": "end" });
      label.textContent = `${Number((value / unit.size).toFixed(1))}${unit.suffix}`;
      grid.append(label);
    }
    const timeStep = TIME_STEPS.find((candidate) => (end - start) / candidate <= 6) || HOUR;
    for (let time = Math.ceil(start / timeStep) * timeStep; time <= end; time += timeStep) {
      const x = toX(time);
      grid.append(svg("line", { class: "chart-tick", x1: x, x2: x, y1: TOP + PLOT_HEIGHT, y2: TOP + PLOT_HEIGHT + 4 }));
      const label = svg("text", { class: "chart-label", x, y: HEIGHT - 6, "text-anchor": "middle" });
      label.textContent = clock(time);
      grid.append(label);
    }
  }

  /** Path data for the line and the area under it, broken where samples are missing. */
  function paths(intervalMs) {
    let linePath = "";
    let areaPath = "";
    let segment = [];
    const close = () => {
      if (segment.length === 0) return;
      const joined = segment.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" L");
      const base = (TOP + PLOT_HEIGHT).toFixed(1);
      linePath += `M${joined} `;
      const [first, last] = [segment[0][0].toFixed(1), segment[segment.length - 1][0].toFixed(1)];
      areaPath += `M${first},${base} L${joined} L${last},${base} Z `;
      segment = [];
    };
    points.forEach((point, index) => {
      if (index > 0 && point.time - points[index - 1].time > intervalMs * GAP_INTERVALS) close();
      segment.push([toX(point.time), toY(point.value)]);
    });
    close();
    return [linePath.trim(), areaPath.trim()];
  }

  function update(newPoints, intervalMs) {
    points = newPoints;
    if (points.length === 0) {
      grid.replaceChildren();
      line.setAttribute("d", "");
      area.setAttribute("d", "");
      root.setAttribute("aria-label", `${title}: no samples in the last hour`);
      show(null);
      return;
    }
    const end = points[points.length - 1].time;
    const start = Math.max(end - HOUR, Math.min(points[0].time, end - MIN_SPAN));
    const peak = Math.max(...points.map((point) => point.value));
    const unit = axis.unit(Math.max(peak, axis.floor));
    const ceiling = Math.max(peak, axis.floor);
    const step = niceStep(ceiling / unit.size, 4) * unit.size;
    const top = Math.ceil(ceiling / step) * step;
    toX = (time) => LEFT + ((time - start) / (end - start)) * PLOT_WIDTH;
    fromX = (x) => start + ((x - LEFT) / PLOT_WIDTH) * (end - start);
    toY = (value) => TOP + PLOT_HEIGHT - (value / top) * PLOT_HEIGHT;
    drawAxes(start, end, top, step, unit);
    const [linePath, areaPath] = paths(intervalMs);
    line.setAttribute("d", linePath);
    area.setAttribute("d", areaPath);
    const minutes = Math.round((end - start) / MINUTE);
    const latest = axis.format(points[points.length - 1].value);
    const summary = `${title} over the last ${minutes} minutes: latest ${latest}, peak ${axis.format(peak)}`;
    root.setAttribute("aria-label", summary);
    show(picked !== null && picked < points.length ? picked : null);
  }

  return { element, update };
}
