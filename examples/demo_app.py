"""The demo app of the default config: a heartbeat line every few seconds, echoes input, exits on "stop".

It shows a live console right after ``make run`` and exercises the graceful
stop command (``servers.demo.stop`` in config.json).
"""

import sys
import threading
import time

HEARTBEAT_SECONDS = 3


def heartbeat(stopped: threading.Event) -> None:
    """Print a numbered line every few seconds until stopped."""
    beat = 0
    while not stopped.wait(HEARTBEAT_SECONDS):
        beat += 1
        print(f"[demo] heartbeat {beat} at {time.strftime('%H:%M:%S')}", flush=True)


def main() -> int:
    stopped = threading.Event()
    threading.Thread(target=heartbeat, args=(stopped,), daemon=True).start()
    print("[demo] started; type a line to have it echoed, or 'stop' to exit", flush=True)
    for line in sys.stdin:
        command = line.rstrip("\n")
        if command.strip().lower() == "stop":
            break
        print(f"[demo] you said: {command}", flush=True)
    stopped.set()
    print("[demo] stopping, bye", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
