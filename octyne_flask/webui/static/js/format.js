// Human-readable numbers for sizes, durations, dates and CPU.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function bytes(value) {
  let amount = Number(value) || 0;
  let unit = 0;
  while (amount >= 1024 && unit < UNITS.length - 1) {
    amount /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${amount} B` : `${amount.toFixed(amount < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

/** The API reports uptime in nanoseconds. */
export function uptime(nanoseconds) {
  let seconds = Math.max(0, Math.floor((Number(nanoseconds) || 0) / 1e9));
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const parts = [];
  if (days) parts.push(`${days}d`);
  if (days || hours) parts.push(`${hours}h`);
  if (days || hours || minutes) parts.push(`${minutes}m`);
  parts.push(`${seconds}s`);
  return parts.join(" ");
}

export function percent(value) {
  return `${(Number(value) || 0).toFixed(1)}%`;
}

/** Unix seconds as local date and time. */
export function date(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString();
}

/** A server's limits (bytes, cores, counts; null when unset) in one line. */
export function limitsText({ memory, cpu, pids, openFiles } = {}) {
  const parts = [];
  if (memory) parts.push(`memory ${bytes(memory)}`);
  if (cpu) parts.push(`CPU ${cpu} ${cpu === 1 ? "core" : "cores"}`);
  if (pids) parts.push(`${pids} processes`);
  if (openFiles) parts.push(`${openFiles} open files`);
  return parts.length ? parts.join(" · ") : "none";
}

const STATUS_NAMES = { 0: "Stopped", 1: "Running", 2: "Crashed" };

export function statusName(status, toDelete) {
  const name = STATUS_NAMES[status] || "Unknown";
  return toDelete ? `${name} · marked for deletion` : name;
}
