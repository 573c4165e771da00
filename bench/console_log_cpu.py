"""CPU of the console log's hot path, in process: a flood appended in 256 KiB chunks, read and encoded by clients.

Method: 100 000 lines of 80 bytes are appended to one ``ConsoleLog`` in chunks of
3 000 lines (what the output reader hands over from a 256 KiB read); after each
append, every one of ``--clients`` subscribers reads its batches and encodes them
as console-v2 frames, as a console session does (a batch is cut and encoded once
for all subscribers at the same position). No sockets and no threads: the figure
is the log's own cost, which the end-to-end flood benchmark cannot separate from
the machine's load. Run it against two trees with farm-bench, e.g.
``farm-bench --vs 'env PYTHONPATH=/path/to/other .venv/bin/python bench/console_log_cpu.py'
-- env PYTHONPATH=. .venv/bin/python bench/console_log_cpu.py``.
"""

from __future__ import annotations

import argparse

from octyne_flask.api.console_session import v2_frames
from octyne_flask.supervisor.console import ConsoleLog

LINES = 100_000
CHUNK = 3_000
MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--floods", type=int, default=5)
    options = parser.parse_args()
    log = ConsoleLog(scrollback_lines=2500, scrollback_bytes=2 * MIB, max_lag_bytes=16 * MIB)
    subscribers = [log.subscribe(None, lambda: None, lambda reason: None)[0] for _ in range(options.clients)]
    lines = [f"{i:08d} " + "x" * 70 for i in range(LINES)]
    sent = 0
    for _ in range(options.floods):
        for start in range(0, LINES, CHUNK):
            log.append(lines[start:start + CHUNK])
            for subscriber in subscribers:
                while (batch := log.read(subscriber)) is not None:
                    sent += len(batch.encoded(v2_frames))
    print(sent)


if __name__ == "__main__":
    main()
