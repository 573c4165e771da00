// Two small inline SVG icons (no emoji: servers often lack a colour-emoji font).

import { svg } from "./dom.js";

const SHAPES = {
  folder: "M1.5 3.5h4l1.5 1.5h7.5v8h-13z",
  file: "M3.5 1.5h6l3 3v10h-9z M9.5 1.5v3h3",
};

/** `name` is "folder" or "file"; decorative, hidden from screen readers. */
export function icon(name) {
  const root = svg("svg", { class: `icon icon-${name}`, viewBox: "0 0 16 16", width: 16, height: 16, "aria-hidden": "true" });
  root.append(svg("path", { d: SHAPES[name] }));
  return root;
}
