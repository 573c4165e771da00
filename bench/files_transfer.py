"""Upload and download of a 1 GiB file through the API, next to `cp` and `cat` of the same file.

Run: .venv/bin/python bench/files_transfer.py [size_mib]
Upload: `curl -F upload=@file` to POST /server/bench/file (multipart, streamed to disk), against
`cp file copy` on the same disk (`sync` before every run); the daemon's RSS is sampled meanwhile. Download (warm cache):
`curl -o /dev/null` of GET /server/bench/file against `cat file > /dev/null`, and against a bare
one-call-sendfile HTTP responder (the ceiling of curl over loopback on this machine).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading

from files_common import (MIB, PeakRss, best_of, drop_file,
                          report, start_daemon, timed, timed_with_cpu, transfer_workspace)


def sendfile_server(path) -> int:
    """The least any HTTP server can do: one blocking sendfile per request. Returns its port.

    Measures the ceiling of `curl` over loopback on this machine, which bounds the download ratio.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    size = os.path.getsize(path)

    def serve() -> None:
        while True:
            connection, _ = listener.accept()
            with connection, open(path, "rb") as source:
                connection.recv(65536)
                connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n"
                                   f"Connection: close\r\n\r\n".encode())
                connection.sendfile(source)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def main(size_mib: int = 1024) -> None:
    base, server, source = transfer_workspace("transfer", size_mib)
    daemon = start_daemon(base / "daemon", server)
    try:
        auth = f"Authorization: {daemon.token}"
        copy = base / "copy.bin"

        def cp() -> float:
            drop_file(copy)
            os.sync()  # each run starts with no dirty pages, so write-back throttling hits neither side first
            return timed(["cp", str(source), str(copy)])

        def upload() -> tuple[float, float]:
            drop_file(server / "source.bin")
            os.sync()
            return timed_with_cpu(["curl", "-sf", "-H", auth, "-F", f"upload=@{source}",
                                   f"{daemon.url}/server/bench/file?path=/"], watch_pid=daemon.proc.pid)

        cp_time = best_of(3, cp)
        with PeakRss(daemon.proc.pid) as rss:
            upload_time, upload_cpu = min(upload() for _ in range(3))
        assert (server / "source.bin").stat().st_size == source.stat().st_size
        subprocess.run(["cat", str(source)], stdout=subprocess.DEVNULL, check=True)  # warm the cache

        def cat() -> float:
            return timed(f"cat {source} > /dev/null", shell=True)

        def download() -> float:
            return timed(["curl", "-sf", "-H", auth, "-o", "/dev/null",
                          f"{daemon.url}/server/bench/file?path=/source.bin"])

        ceiling_port = sendfile_server(source)

        def ceiling() -> float:
            return timed(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{ceiling_port}/"])

        cat_time = best_of(3, cat)
        download_time = best_of(3, download)
        ceiling_time = best_of(3, ceiling)
        rate = lambda seconds: f"{size_mib / seconds:.0f} MiB/s"  # noqa: E731
        report(f"Transfer of {size_mib} MiB", [
            ("operation", "ours", "reference", "ours / reference speed"),
            ("upload (curl -F) vs cp", f"{upload_time:.2f} s ({rate(upload_time)})",
             f"{cp_time:.2f} s ({rate(cp_time)})", f"{cp_time / upload_time:.0%}"),
            ("download (curl -o /dev/null) vs cat", f"{download_time:.2f} s ({rate(download_time)})",
             f"{cat_time:.2f} s ({rate(cat_time)})", f"{cat_time / download_time:.0%}"),
            ("download vs bare sendfile server + curl", f"{download_time:.2f} s ({rate(download_time)})",
             f"{ceiling_time:.2f} s ({rate(ceiling_time)})", f"{ceiling_time / download_time:.0%}"),
        ])
        print(f"\nDaemon CPU for the fastest upload: {upload_cpu:.2f} s "
              f"(the rest of the wall time is waiting on the socket and the disk)")
        print(f"Daemon RSS during upload: start {rss.start / MIB:.0f} MiB, peak {rss.peak / MIB:.0f} MiB, "
              f"growth {(rss.peak - rss.start) / MIB:.0f} MiB")
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
