// Periodic refresh that never overlaps itself and rests while the tab is hidden.

import { ApiError } from "./api.js";

/**
 * Call `tick()` now and then `intervalMs` after each one finishes, until
 * `stop()`. An expired session or an unreachable daemon ends the loop (their
 * page is shown instead); other API errors are retried on the next tick.
 */
export function poll(tick, intervalMs) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    if (!document.hidden) {
      try {
        await tick();
      } catch (failure) {
        if (!(failure instanceof ApiError) || failure.status === 401) return;
      }
    }
    if (!stopped) timer = setTimeout(run, intervalMs);
  };
  run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    /** Refresh at once (after a user action) instead of waiting for the next tick. */
    now() {
      clearTimeout(timer);
      if (!stopped) run();
    },
  };
}
