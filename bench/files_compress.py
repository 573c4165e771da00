"""Compression of a 300 MB mixed tree through the API, next to `zip -r`, `tar czf` and `tar | zstd --long`.

Run: .venv/bin/python bench/files_compress.py [scale]
The tree (scale 1 is about 300 MB): 120 MB of log-like text in 12 files, 130 MB of random data in
13 files (like region/world files), and 2000 small text/JSON files of about 25 KB. Each archive is
built synchronously (the API answers when the archive is complete); each side runs three times,
alternating, and the fastest wall time and the CPU seconds of that run are reported (the machine is
shared, so wall times are noisy; CPU seconds show the work each side does).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

from files_common import MIB, drop_file, report, start_daemon, timed_with_cpu, workspace

RUNS = 3

LEVELS = ["TRACE", "DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]
WORDS = ("player joined left the game saved chunk region entity tick took ms world overworld nether "
         "end moved too quickly lag spike connection reset keepalive timeout plugin loaded enabled "
         "disabled command issued server thread worker async task completed").split()


def log_text(generator: random.Random, size: int) -> bytes:
    lines, total = [], 0
    while total < size:
        words = " ".join(generator.choices(WORDS, k=generator.randint(4, 12)))
        line = (f"[{generator.randint(0, 23):02d}:{generator.randint(0, 59):02d}:{generator.randint(0, 59):02d}] "
                f"[Server thread/{generator.choice(LEVELS)}]: {words} id={generator.getrandbits(32):08x} "
                f"x={generator.uniform(-3e4, 3e4):.3f}\n")
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def build_tree(root: Path, scale: float) -> int:
    generator = random.Random(300)
    (root / "logs").mkdir(parents=True)
    (root / "world" / "region").mkdir(parents=True)
    (root / "config").mkdir()
    for index in range(12):
        (root / "logs" / f"server-{index}.log").write_bytes(log_text(generator, int(10_000_000 * scale)))
    for index in range(13):
        (root / "world" / "region" / f"r.{index}.0.mca").write_bytes(generator.randbytes(int(10_000_000 * scale)))
    for index in range(2000):
        folder = root / "config" / f"plugin{index % 40}"
        folder.mkdir(exist_ok=True)
        if index % 2:
            body = log_text(generator, int(25_000 * scale))
        else:
            pairs = ",\n".join(f'  "key{k}": {generator.randint(0, 10**6)}' for k in range(1200))
            body = ("{\n" + pairs + "\n}\n").encode()
        (folder / f"file{index}.{'txt' if index % 2 else 'json'}").write_bytes(body)
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def main(scale: float = 1.0) -> None:
    base = workspace("compress")
    server = base / "server"
    total = build_tree(server / "tree", scale)
    daemon = start_daemon(base / "daemon", server)
    cases = [
        ("zip", "archiveType=zip", "ours.zip", "ref.zip", "zip -qry ref.zip tree"),
        ("tar.gz", "archiveType=tar&compress=gzip", "ours.tar.gz", "ref.tar.gz", "tar czf ref.tar.gz tree"),
        ("tar.zst", "archiveType=tar&compress=zstd", "ours.tar.zst", "ref.tar.zst",
         "tar cf - tree | zstd --long -q -o ref.tar.zst"),
    ]
    rows = [("archive", "ours", "reference command", "reference", "wall ratio", "CPU ratio", "our size",
             "their size", "size ratio")]
    try:
        for label, query, ours, theirs, command in cases:
            def reference() -> tuple[float, float]:
                drop_file(server / theirs)
                return timed_with_cpu(command, shell=True, cwd=server)

            def api() -> tuple[float, float]:
                drop_file(server / ours)
                return timed_with_cpu(["curl", "-sf", "-H", f"Authorization: {daemon.token}", "--data", '["tree"]',
                                       f"{daemon.url}/server/bench/compress?path=/{ours}&{query}"],
                                      watch_pid=daemon.proc.pid)

            theirs_runs, ours_runs = [], []
            for _ in range(RUNS):
                theirs_runs.append(reference())
                ours_runs.append(api())
            (their_time, their_cpu), (our_time, our_cpu) = min(theirs_runs), min(ours_runs)
            our_size, their_size = (server / ours).stat().st_size, (server / theirs).stat().st_size
            rows.append((label, f"{our_time:.2f} s ({our_cpu:.1f} s CPU)", f"`{command}`",
                         f"{their_time:.2f} s ({their_cpu:.1f} s CPU)", f"{our_time / their_time:.2f}×",
                         f"{our_cpu / their_cpu:.2f}×", f"{our_size / MIB:.1f} MiB", f"{their_size / MIB:.1f} MiB",
                         f"{our_size / their_size:.3f}"))
            check = {"zip": ["unzip", "-tq", ours], "tar.gz": ["tar", "-tzf", ours],
                     "tar.zst": ["tar", "--zstd", "-tf", ours]}[label]
            subprocess.run(check, cwd=server, check=True, stdout=subprocess.DEVNULL)
        report(f"Compression of a {total / 1e6:.0f} MB tree (12 logs, 13 random files, 2000 small files)", rows)
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
