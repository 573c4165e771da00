// Recent CPU and memory samples per server, kept while the page is open so
// the sparklines survive moving between views.

const WINDOW_MS = 5 * 60 * 1000;
const samples = new Map();

/** Add one `GET /server/<id>` answer; returns that server's samples, oldest first. */
export function recordSample(id, info) {
  const now = Date.now();
  const series = (samples.get(id) || []).filter((sample) => now - sample.time <= WINDOW_MS);
  series.push({ time: now, cpu: info.status === 1 ? info.cpuUsage : 0, memory: info.status === 1 ? info.memoryUsage : 0 });
  samples.set(id, series);
  return series;
}
