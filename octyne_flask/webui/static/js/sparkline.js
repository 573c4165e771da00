// A tiny inline SVG line chart for the last minutes of CPU or memory samples.

import { svg } from "./dom.js";

const WIDTH = 120;
const HEIGHT = 28;

/** An <svg> to place once; call `update(values, ceiling, label)` with each new sample list. */
export function createSparkline(className) {
  const root = svg("svg", {
    class: `sparkline ${className}`, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT,
    role: "img", preserveAspectRatio: "none",
  });
  const area = svg("polygon", { class: "sparkline-area" });
  const line = svg("polyline", { class: "sparkline-line" });
  root.append(area, line);
  return {
    element: root,
    update(values, ceiling, label) {
      root.setAttribute("aria-label", label);
      if (values.length === 0) {
        line.setAttribute("points", "");
        area.setAttribute("points", "");
        return;
      }
      const top = Math.max(ceiling, Math.max(...values) * 1.25) || 1; // headroom: a flat series sits below the top
      const step = values.length > 1 ? WIDTH / (values.length - 1) : WIDTH;
      const points = values.map((value, index) => {
        const x = values.length > 1 ? index * step : WIDTH;
        const y = HEIGHT - 1 - (value / top) * (HEIGHT - 2);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      const firstX = values.length > 1 ? 0 : WIDTH;
      line.setAttribute("points", points.join(" "));
      area.setAttribute("points", `${firstX},${HEIGHT} ${points.join(" ")} ${WIDTH},${HEIGHT}`);
    },
  };
}
