"""Listing a folder of 10 000 files through the API (GET /server/bench/files), with MIME sniffing.

Run: .venv/bin/python bench/files_list.py [count]
Files are a mix of text, JSON, PNG headers and random data of 1-8 KiB; the listing sniffs each one
from at most its first 512 bytes (one pread per file). Reported: best and median of 5 requests,
and `ls -l` of the same folder for scale.
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import time

from files_common import report, start_daemon, timed, workspace


def main(count: int = 10_000) -> None:
    base = workspace("list")
    folder = base / "server" / "many"
    folder.mkdir(parents=True)
    generator = random.Random(10)
    heads = [b"plain text line\n", b'{"json": 1}\n', b"\x89PNG\r\n\x1a\n", b"<html><body>"]
    for index in range(count):
        head = heads[index % 4] if index % 5 else generator.randbytes(16)
        (folder / f"file{index:05d}.dat").write_bytes(head + generator.randbytes(generator.randint(1024, 8192)))
    daemon = start_daemon(base / "daemon", base / "server")
    try:
        times, size = [], 0
        for _ in range(5):
            started = time.perf_counter()
            response = daemon.get("/server/bench/files?path=/many")
            times.append(time.perf_counter() - started)
            size = len(response.content)
            assert len(response.json()["contents"]) == count
        ls_time = min(timed(["ls", "-l", str(folder)]) for _ in range(3))
        report(f"Listing {count} files", [
            ("what", "best", "median", "notes"),
            ("GET /server/bench/files", f"{min(times) * 1000:.0f} ms", f"{statistics.median(times) * 1000:.0f} ms",
             f"{size / 1e6:.1f} MB of JSON, every file sniffed"),
            ("ls -l (no sniffing)", f"{ls_time * 1000:.0f} ms", "", "for scale"),
        ])
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
