"""Upload and download of a 1 GiB file over SFTP with OpenSSH's `sftp`, against the daemon's SFTP server.

Run: .venv/bin/python bench/sftp_transfer.py [size_mib]
OpenSSH's `sftp` in batch mode (key login) puts and gets the file over loopback; the daemon's RSS is
sampled meanwhile. When an `sshd` is installed, the same transfers against the system's sshd (on a
free port, this user's own instance) are the reference (target: ours >= 50% of it); otherwise the
target is >= 100 MiB/s each way. Every figure is the best of a few runs.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from files_common import (MIB, PeakRss, best_of, drop_file,
                          report, start_daemon, timed_with_cpu, transfer_workspace)

from tests.harness import free_port  # noqa: E402  (files_common put the repository on the path)

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"  # not on PATH for non-root users


def sftp_batch(port: int, user: str, key, known_hosts, commands: str, server_pid: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the server's process tree) OpenSSH's sftp takes to run ``commands``."""
    return timed_with_cpu(["sftp", "-q", "-P", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
                           "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={known_hosts}",
                           "-b", "-", f"{user}@127.0.0.1"], watch_pid=server_pid, input=commands.encode(),
                          stderr=subprocess.DEVNULL)


def start_sshd(base, key) -> tuple[subprocess.Popen, int] | None:
    """This user's own sshd on a free loopback port accepting ``key``, or None when there is no sshd."""
    if not os.path.exists(SSHD):
        return None
    host_key = base / "sshd_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    (base / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    port = free_port()
    config = base / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {base / 'sshd.pid'}\n"
                      f"AuthorizedKeysFile {base / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
                      "Subsystem sftp internal-sftp\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", 0o755, exist_ok=True)  # its privilege separation folder, made by the service unit
    log = base / "sshd.log"
    with open(log, "wb") as errors:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=errors)
    time.sleep(1)
    if process.poll() is not None:
        print(f"sshd did not start: {log.read_text().strip()}", file=sys.stderr)
        return None
    return process, port


@dataclass(frozen=True)
class Target:
    """An SFTP server to measure: where to log in, and where the uploaded file lands (remote and on disk)."""

    port: int
    user: str
    remote: str
    on_disk: Path
    pid: int  # the server process, whose CPU time is counted


def measure(target: Target, source: Path, key: Path, known_hosts: Path, back: Path) -> list[tuple[float, float]]:
    """[(wall, CPU seconds) of the upload, of the download], each the fastest of 3 runs."""
    def put() -> tuple[float, float]:
        drop_file(target.on_disk)
        return sftp_batch(target.port, target.user, key, known_hosts, f"put {source} {target.remote}\n", target.pid)

    def get() -> tuple[float, float]:
        drop_file(back)
        return sftp_batch(target.port, target.user, key, known_hosts, f"get {target.remote} {back}\n", target.pid)

    upload, download = best_of(3, put), best_of(3, get)
    assert back.read_bytes() == source.read_bytes()
    return [upload, download]


def main(size_mib: int = 1024) -> None:
    base, server, source = transfer_workspace("sftp", size_mib)
    key = base / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (base / "keys").write_text(f"admin: {key.with_suffix('.pub').read_text()}")
    port = free_port()
    daemon = start_daemon(base / "daemon", server,
                          sftp={"enabled": True, "port": port, "authorizedKeys": str(base / "keys")})
    sshd = start_sshd(base, key)
    known_hosts, back = base / "known_hosts", base / "back.bin"
    try:
        with PeakRss(daemon.proc.pid) as rss:
            ours = measure(Target(port, "admin.bench", "/up.bin", server / "up.bin", daemon.proc.pid),
                           source, key, known_hosts, back)
        gib = size_mib / 1024
        rows = [("operation", "ours", "CPU s / GiB (daemon)", "reference", "ours / reference", "target")]
        reference = None
        if sshd is not None:
            reference = measure(Target(sshd[1], getpass.getuser(), str(base / "up.bin"), base / "up.bin", sshd[0].pid),
                                source, key, known_hosts, back)
        for index, name in enumerate(("upload (put)", "download (get)")):
            wall, cpu = ours[index]
            row = [name, f"{size_mib / wall:.0f} MiB/s", f"{cpu / gib:.1f}"]
            if reference is None:
                row += ["no sshd here", "—", "≥ 100 MiB/s"]
            else:
                theirs = reference[index][0]
                row += [f"{size_mib / theirs:.0f} MiB/s (sshd)", f"{theirs / wall:.0%}", "≥ 50%"]
            rows.append(tuple(row))
        report(f"SFTP transfer of {size_mib} MiB over loopback (OpenSSH sftp, best of 3)", rows)
        print(f"\nDaemon RSS: {rss.start / MIB:.0f} MiB at start, peak {rss.peak / MIB:.0f} MiB "
              f"(growth {(rss.peak - rss.start) / MIB:.0f} MiB; target < 50 MiB)")
    finally:
        if sshd is not None:
            sshd[0].terminate()
            sshd[0].wait()
        daemon.stop()
        shutil.rmtree(base)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
