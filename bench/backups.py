"""Backup and restore of the 300 MB bench tree through the API, next to `tar cf - | zstd --long` and
`zstd -d | tar x`, with the daemon's RSS growth.

Run: .venv/bin/python bench/backups.py [scale]
The tree is files_compress.py's (scale 1 is about 300 MB). A backup is timed from the POST until the
listing shows it complete (polled every 20 ms); a restore is timed as its POST, which answers when the
directory has been swapped. Our restore first makes the `pre-restore` backup the spec requires, so it
is reported both whole and without that backup (the whole time minus the backup time measured just
before). Each side runs twice, alternating; the fastest run is reported.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from files_common import MIB, PeakRss, report, timed, workspace
from files_compress import build_tree

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config

RUNS = 2


def main(scale: float = 1.0) -> None:
    base = workspace("backups")
    tree = base / "server"
    total = build_tree(tree, scale)
    daemon = start_daemon_with_backups(base, tree)
    rows = [("operation", "ours", "reference command", "reference", "ratio", "daemon RSS growth")]
    try:
        backup_times, reference_backups, names = [], [], []
        with PeakRss(daemon.proc.pid) as rss:
            for _ in range(RUNS):
                reference_backups.append(timed(f"tar cf - . | zstd --long -q -f -o {base}/ref.tar.zst",
                                               shell=True, cwd=tree))
                started = time.perf_counter()
                name = daemon.post("/server/bench/backups").json()["name"]
                while not any(entry["name"] == name and entry["complete"]
                              for entry in daemon.get("/server/bench/backups").json()["backups"]):
                    time.sleep(0.02)
                backup_times.append(time.perf_counter() - started)
                names.append(name)
                time.sleep(0.5)  # retention and the after-commands finish before the next POST
        ours, theirs = min(backup_times), min(reference_backups)
        rows.append(("backup", f"{ours:.2f} s", "`tar cf - . | zstd --long`", f"{theirs:.2f} s",
                     f"{ours / theirs:.2f}×", f"{(rss.peak - rss.start) / MIB:.0f} MiB"))
        subprocess.run(["tar", "--zstd", "-tf", str(base / "backups" / names[-1])], check=True,
                       stdout=subprocess.DEVNULL)

        restore_times, reference_restores = [], []
        with PeakRss(daemon.proc.pid) as rss:
            for _ in range(RUNS):
                shutil.rmtree(base / "ref-restore", ignore_errors=True)
                (base / "ref-restore").mkdir()
                reference_restores.append(timed(f"zstd -d -c {base}/ref.tar.zst | tar x -C {base}/ref-restore",
                                                shell=True))
                started = time.perf_counter()
                answer = daemon.post(f"/server/bench/backups/{names[-1]}/restore", timeout=600)
                assert answer.status_code == 200, answer.text
                restore_times.append(time.perf_counter() - started)
        ours, theirs = min(restore_times), min(reference_restores)
        without_backup = ours - min(backup_times)
        rows.append(("restore (with its pre-restore backup)", f"{ours:.2f} s", "`zstd -d | tar x`", f"{theirs:.2f} s",
                     f"{ours / theirs:.2f}×", f"{(rss.peak - rss.start) / MIB:.0f} MiB"))
        rows.append(("restore alone (minus one backup's time)", f"{without_backup:.2f} s", "`zstd -d | tar x`",
                     f"{theirs:.2f} s", f"{without_backup / theirs:.2f}×", ""))
        report(f"Backup and restore of a {total / 1e6:.0f} MB tree", rows)
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def start_daemon_with_backups(base, tree) -> RunningDaemon:
    """The real daemon with one stopped server, ``bench``, backed up into ``base/backups``."""
    servers = {"bench": {"directory": str(tree), "command": "sleep 100000", "enabled": False,
                         "backups": {"path": str(base / "backups"), "keep": 3}}}
    (base / "daemon").mkdir()
    return RunningDaemon(base / "daemon", daemon_config(base / "daemon", servers), {"admin": ADMIN_HASH})


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
