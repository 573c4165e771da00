// ANSI/VT escape codes in console output: SGR colours and styles become
// styled text segments, every other escape or control sequence is dropped.

// CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-byte ESC sequences.
const ESCAPES = /\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;
const CUBE = [0, 95, 135, 175, 215, 255];

/** Fresh SGR state: what the terminal would use for the next character. */
export function initialState() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false, strike: false };
}

/** A colour as {palette: 0-15} or {rgb: "rgb(r, g, b)"} for 256-colour and true-colour codes. */
function xterm256(index) {
  if (index < 16) return { palette: index };
  if (index < 232) {
    const n = index - 16;
    return { rgb: `rgb(${CUBE[Math.floor(n / 36)]}, ${CUBE[Math.floor(n / 6) % 6]}, ${CUBE[n % 6]})` };
  }
  const level = 8 + (index - 232) * 10;
  return { rgb: `rgb(${level}, ${level}, ${level})` };
}

/** Read an extended colour (38/48 ;5;n or ;2;r;g;b); returns [colour, codes consumed]. */
function extendedColour(codes, at) {
  if (codes[at + 1] === 5 && codes.length > at + 2) return [xterm256(codes[at + 2] & 255), 2];
  if (codes[at + 1] === 2 && codes.length > at + 4) {
    const [r, g, b] = codes.slice(at + 2, at + 5).map((value) => Math.min(255, value));
    return [{ rgb: `rgb(${r}, ${g}, ${b})` }, 4];
  }
  return [null, codes.length];
}

/** Apply one SGR parameter list (`1;31`) to `state` in place. */
function applySgr(state, parameters) {
  const codes = parameters === "" ? [0] : parameters.split(";").map((part) => Number.parseInt(part || "0", 10));
  for (let i = 0; i < codes.length; i += 1) {
    const code = codes[i];
    if (code === 0) Object.assign(state, initialState());
    else if (code === 1) state.bold = true;
    else if (code === 2) state.dim = true;
    else if (code === 3) state.italic = true;
    else if (code === 4) state.underline = true;
    else if (code === 7) state.inverse = true;
    else if (code === 9) state.strike = true;
    else if (code === 22) state.bold = state.dim = false;
    else if (code === 23) state.italic = false;
    else if (code === 24) state.underline = false;
    else if (code === 27) state.inverse = false;
    else if (code === 29) state.strike = false;
    else if (code >= 30 && code <= 37) state.fg = { palette: code - 30 };
    else if (code >= 90 && code <= 97) state.fg = { palette: code - 90 + 8 };
    else if (code >= 40 && code <= 47) state.bg = { palette: code - 40 };
    else if (code >= 100 && code <= 107) state.bg = { palette: code - 100 + 8 };
    else if (code === 39) state.fg = null;
    else if (code === 49) state.bg = null;
    else if (code === 38 || code === 48) {
      const [colour, used] = extendedColour(codes, i);
      if (code === 38) state.fg = colour;
      else state.bg = colour;
      i += used;
    }
  }
}

/**
 * Split one line into `[{text, style}]` segments, `style` a copy of the SGR
 * state for that text. `state` carries over between lines, like a terminal.
 * A carriage return inside a line means "overwrite" (progress bars): only the
 * text after the last one is kept, though earlier colour changes still apply.
 */
export function parseLine(line, state) {
  const visible = line.replace(/\r+$/, "");
  let segments = [];
  let position = 0;
  const push = (text) => {
    const pieces = text.split("\r");
    if (pieces.length > 1) segments = [];
    const clean = pieces[pieces.length - 1].replace(CONTROL, "");
    if (clean) segments.push({ text: clean, style: { ...state } });
  };
  for (const match of visible.matchAll(ESCAPES)) {
    push(visible.slice(position, match.index));
    if (match[2] === "m") applySgr(state, match[1]);
    position = match.index + match[0].length;
  }
  push(visible.slice(position));
  return segments;
}
