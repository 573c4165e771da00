"""kill -9 of the whole daemon at random moments of its work, 30 rounds on the same files.

Each round starts the daemon on what the last round left, checks the start-up
sweep and that every enabled app runs exactly once, then runs uploads,
compressions (sync and async), ``PATCH /config`` and account changes at once
and SIGKILLs the daemon at a random moment: master and worker (the keeper
helper then stops the apps), or the helper with them (the apps are orphaned
until the next start). Afterwards config.json and users.json hold the old or
the new content and every file under its real name is whole.

The moments and kinds of kill come from a seeded RNG; a failure names the seed
(``CRASH_SEED=<n>`` replays the same choices, the timing aside).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import random
import secrets
import shutil
import signal
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import psutil
import requests
import zstandard

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config, wait_until

ROUNDS = 30
KILL_WINDOW = (0.05, 1.0)  # seconds after the work began
UPLOAD_SIZE = 2 << 20
UPLOAD_PIECE = 64 << 10
UPLOAD_PAUSE = 0.004  # between pieces: an upload spans a good part of the kill window
ARCHIVES = [("zip", "true", "zip"), ("zip", "false", "zip"), ("tar", "gzip", "tar.gz"),
            ("tar", "xz", "tar.xz"), ("tar", "zstd", "tar.zst")]
APP_SCRIPT = "while :; do sleep 1; done"
APPS_UP_WAIT = 20.0
TEMPORARY_PREFIX = ".octyne-"


class Scene:
    """The state folder (config, users, journal), the servers' folders, the two configs PATCH alternates."""

    def __init__(self, root: Path):
        self.state = root / "state"
        self.servers = root / "servers"
        self.marker = f"octyne-crash-{secrets.token_hex(4)}"  # in every app's command line
        self.state.mkdir()
        for name in ("alpha", "beta", "gamma"):
            (self.servers / name).mkdir(parents=True)
        self.data = write_data(self.servers / "alpha" / "data")
        self.tree = write_tree(self.servers / "beta" / "src")  # beta is in both configs
        shutil.make_archive(str(self.servers / "beta" / "src"), "zip", self.servers / "beta", "src")
        self.config = daemon_config(self.state, stopGracePeriod=1)
        # B disables beta (still running: it stops at the next start) and adds gamma (started at once).
        self.texts = [self._config_text(alpha=True, beta=True), self._config_text(alpha=True, beta=False, gamma=True)]

    def _config_text(self, **enabled: bool) -> str:
        servers = {name: {"directory": str(self.servers / name), "enabled": on,
                          "command": f"sh -c '{APP_SCRIPT}' {self.marker}-{name}"} for name, on in enabled.items()}
        return json.dumps({**self.config, "servers": servers}, indent=2) + "\n"

    def enabled_apps(self) -> set[str]:
        servers = json.loads((self.state / "config.json").read_text())["servers"]
        return {name for name, server in servers.items() if server.get("enabled", True)}

    def app_processes(self) -> dict[str, list[psutil.Process]]:
        """The live (non-zombie) runs of each app, by the marker in their command line
        (``process.info["ppid"]``: their parent when listed).

        A run's shell forks for each ``sleep``, and until that child execs it carries the shell's
        command line: a child of a marked process is part of that run, not another one."""
        found: dict[str, list[psutil.Process]] = {"alpha": [], "beta": [], "gamma": []}
        marked = []
        for process in psutil.process_iter(["cmdline", "status", "ppid"]):
            cmdline = process.info["cmdline"] or []
            if cmdline and cmdline[-1].startswith(self.marker) and process.info["status"] != psutil.STATUS_ZOMBIE:
                marked.append(process)
        runs = {process.pid for process in marked}
        for process in marked:
            if process.info["ppid"] not in runs:
                found[process.info["cmdline"][-1][len(self.marker) + 1:]].append(process)
        return found

    def temporaries(self) -> list[str]:
        """Every ``.octyne-*`` name left in the servers' folders."""
        return [os.path.join(folder, name) for folder, folders, files in os.walk(self.servers)
                for name in folders + files if name.startswith(TEMPORARY_PREFIX)]


def write_data(folder: Path) -> dict[str, bytes]:
    """What the compressions archive: some text, some noise, a subfolder; name (from the server root) -> bytes."""
    noise = random.Random(1).randbytes(384 << 10)
    text = "".join(f"line {n}: the quick brown fox\n" for n in range(30_000)).encode()
    files = {"data/noise.bin": noise, "data/log.txt": text, "data/sub/small.txt": b"small\n"}
    for name, content in files.items():
        path = folder.parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def write_tree(folder: Path) -> dict[str, bytes]:
    """What copies, transactions and decompressions work on: 40 files in 4 folders; relative name -> bytes."""
    files = {f"d{n % 4}/f{n}.bin": random.Random(n).randbytes(24 << 10) for n in range(40)}
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return files


def tree_files(folder: Path) -> dict[str, bytes]:
    """Relative name -> bytes of the files under ``folder``, leaving out temporaries (the next start sweeps them)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*")
            if path.is_file() and not any(part.startswith(TEMPORARY_PREFIX) for part in path.relative_to(folder).parts)}


def upload_content(name: str) -> bytes:
    return random.Random(name).randbytes(UPLOAD_SIZE)


class Sequential:
    """One client's changes, made one at a time: on disk there is the last answered state or the one in flight."""

    def __init__(self, state):
        self.answered = state
        self.in_flight = None

    def change(self, state, send) -> None:
        self.in_flight = state
        send()
        self.answered, self.in_flight = state, None

    def allowed(self) -> list:
        return [self.answered] + ([self.in_flight] if self.in_flight is not None else [])


class Work:
    """The concurrent clients of one round; each stops at its first failure (the kill, normally)."""

    def __init__(self, scene: Scene, daemon: RunningDaemon, round_number: int, users: set[str], rng: random.Random):
        self.scene, self.daemon, self.round = scene, daemon, round_number
        self.rng = random.Random(rng.random())  # the clients' own choices, independent of their timing
        self.killed = threading.Event()
        self.failures: list[str] = []
        self.uploads: list[str] = []
        self.archives: list[str] = []
        self.copies: list[str] = []
        self.config = Sequential((scene.state / "config.json").read_bytes())
        self.users = Sequential(frozenset(users))
        self._threads = [threading.Thread(target=self._run, args=(client,), daemon=True)
                         for client in (self._upload, self._compress, self._patch_config, self._change_accounts,
                                       self._copy_and_unpack)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(15)
            assert not thread.is_alive(), "a client hung after the kill"

    def _run(self, client) -> None:
        try:
            while not self.killed.is_set():
                client()
        except Exception as error:  # after the kill: the request the daemon's death cut off
            if not self.killed.is_set():
                self.failures.append(f"{client.__name__}: {error!r}")

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(method, self.daemon.url + path, timeout=10,
                                    headers={"Authorization": self.daemon.token}, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def _upload(self) -> None:
        name = f"up-{self.round}-{len(self.uploads)}.bin"
        self.uploads.append(name)
        content = upload_content(name)
        boundary = secrets.token_hex(8)
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=10)
        try:
            connection.putrequest("POST", "/server/beta/file?path=/")
            connection.putheader("Authorization", self.daemon.token)
            connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            connection.putheader("Content-Length", str(len(head) + len(content) + len(tail)))
            connection.endheaders(head)
            for start in range(0, len(content), UPLOAD_PIECE):
                connection.send(content[start:start + UPLOAD_PIECE])
                time.sleep(UPLOAD_PAUSE)
            connection.send(tail)
            response = connection.getresponse()
            assert response.status == 200, f"upload: {response.status} {response.read()!r}"
        finally:
            connection.close()

    def _compress(self) -> None:
        archive_type, compression, suffix = self.rng.choice(ARCHIVES)
        name = f"arc-{self.round}-{len(self.archives)}.{suffix}"
        self.archives.append(name)
        asynchronous = self.rng.random() < 0.5
        query = f"path=/{name}&archiveType={archive_type}&compress={compression}"
        if not asynchronous:
            self._request("POST", f"/server/alpha/compress?{query}", data='["data"]')
            return
        token = self._request("POST", f"/server/alpha/compress/v2?{query}&async=true", data='["data"]').json()["token"]
        while not self._request("GET", f"/server/alpha/compress/v2?token={token}").json()["finished"]:
            time.sleep(0.02)

    def _copy_and_unpack(self) -> None:
        """A folder copy, a transaction (copy + remove of an earlier copy) or a decompression, in beta."""
        name = f"cp-{self.round}-{len(self.copies)}"
        self.copies.append(name)
        kind = self.rng.choice(["copy", "transaction", "decompress"])
        if kind == "copy":
            self._request("PATCH", "/server/beta/file", data=json.dumps({"operation": "cp", "src": "/src", "dest": f"/{name}"}))
        elif kind == "transaction":
            steps = [{"operation": "cp", "src": "/src", "dest": f"/{name}"}]
            if len(self.copies) > 1:
                steps.append({"operation": "rm", "path": f"/{self.copies[-2]}"})
            self._request("PATCH", "/server/beta/files", data=json.dumps({"operations": steps}))
        else:
            self._request("POST", "/server/beta/decompress?path=/src.zip", data=f"/{name}")

    def _patch_config(self) -> None:
        text = self.scene.texts[1] if self.config.answered == self.scene.texts[0].encode() else self.scene.texts[0]
        self.config.change(text.encode(), lambda: self._request("PATCH", "/config", data=text))
        time.sleep(0.05)

    def _change_accounts(self) -> None:
        users = self.users.answered
        name, renamed = f"u{self.round}x{len(users)}", f"r{self.round}x{len(users)}"
        self.users.change(users | {name}, lambda: self._request(
            "POST", "/accounts", data=json.dumps({"username": name, "password": "secret"})))
        self.users.change(users | {renamed}, lambda: self._request(
            "PATCH", f"/accounts?username={name}", data=json.dumps({"username": renamed, "password": ""})))
        if self.rng.random() < 0.7:  # the rest stay, so users.json grows over the rounds
            self.users.change(users, lambda: self._request("DELETE", f"/accounts?username={renamed}"))


def daemon_processes(daemon: RunningDaemon) -> tuple[psutil.Process, psutil.Process, psutil.Process]:
    """Master, worker and the keeper helper of a running daemon whose apps are up."""
    master = psutil.Process(daemon.proc.pid)
    [worker] = master.children()
    [helper] = [child for child in worker.children() if "keeper.sh" in " ".join(child.cmdline())]
    return master, worker, helper


def kill(daemon: RunningDaemon, everything: bool) -> None:
    """SIGKILL master and worker at once (their process group); with ``everything``, the keeper helper too."""
    master, worker, helper = daemon_processes(daemon)
    if everything:
        helper.kill()
    os.killpg(master.pid, signal.SIGKILL)
    daemon.proc.wait(10)
    wait_until(lambda: all(dead(process) for process in [worker] + ([helper] if everything else [])))
    daemon.session.close()


def dead(process: psutil.Process) -> bool:
    """Gone, or a zombie (it runs nothing; whoever adopted it reaps it in its own time)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def check_files(scene: Scene, work: Work) -> None:
    """What the killed daemon left: both JSON files one of their two last contents, every real name whole.

    The uploads and archives checked are removed, so each round checks only its own."""
    config = (scene.state / "config.json").read_bytes()
    assert config in work.config.allowed(), f"config.json is neither the old nor the new content:\n{config!r}"
    users = json.loads((scene.state / "users.json").read_text())
    allowed = work.users.allowed()
    assert frozenset(users) in allowed, f"users.json has {sorted(users)}, not one of {allowed}"
    assert users["admin"] == ADMIN_HASH and all(stored.startswith("$argon2id$") for stored in users.values())
    for name in visible(scene.servers / "beta"):
        if name in ("src", "src.zip"):
            continue
        if name in work.copies:
            check_copy(scene, scene.servers / "beta" / name)
            continue
        assert name in work.uploads, f"unexpected file {name} in beta"
        assert (scene.servers / "beta" / name).read_bytes() == upload_content(name), f"upload {name} is not whole"
        os.unlink(scene.servers / "beta" / name)
    for name in visible(scene.servers / "alpha"):
        if name != "data":
            assert name in work.archives, f"unexpected file {name} in alpha"
            assert archived_files(scene.servers / "alpha" / name) == scene.data, f"archive {name} is not whole"
            os.unlink(scene.servers / "alpha" / name)
    assert visible(scene.servers / "gamma") == []


def check_copy(scene: Scene, copy: Path) -> None:
    """A copy is the whole source; a decompression stopped midway holds whole files of it (then removed)."""
    copied = tree_files(copy)
    unpacked = copied.keys() <= {f"src/{file}" for file in scene.tree}
    expected = {file: scene.tree[file.removeprefix("src/")] for file in copied} if unpacked else scene.tree
    assert copied == expected, f"{copy.name} is neither a whole copy nor whole unpacked files"
    shutil.rmtree(copy)


def visible(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if not name.startswith(TEMPORARY_PREFIX))


def archived_files(path: Path) -> dict[str, bytes]:
    """Every regular file in the archive with its content (reading checks the CRCs)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as bundle:
            return {info.filename: bundle.read(info) for info in bundle.infolist() if not info.is_dir()}
    raw = path.read_bytes()
    if path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as bundle:
        return {member.name: bundle.extractfile(member).read() for member in bundle if member.isfile()}


def check_restart(scene: Scene, daemon: RunningDaemon) -> None:
    """The new daemon swept every temporary and runs each enabled app exactly once (no orphan, no duplicate)."""
    assert scene.temporaries() == [], "temporaries survived the start"
    journal = scene.state / ".config.json.temporaries"
    assert not journal.exists() or json.loads(journal.read_text()) == []
    enabled = scene.enabled_apps()
    worker = wait_until(lambda: psutil.Process(daemon.proc.pid).children(), APPS_UP_WAIT)[0]

    def started_by_the_new_worker():
        apps = scene.app_processes()
        return all(any(process.info["ppid"] == worker.pid for process in apps[name]) for name in enabled) and apps

    apps = wait_until(started_by_the_new_worker, APPS_UP_WAIT)
    counts = {name: len(processes) for name, processes in apps.items()}
    assert counts == {name: int(name in enabled) for name in apps}, f"app processes {counts}, enabled {enabled}"


def test_kill_9_at_random_moments_loses_and_leaves_nothing(tmp_path):
    seed = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    scene = Scene(tmp_path)
    (scene.state / "config.json").write_text(scene.texts[0])
    (scene.state / "users.json").write_text(json.dumps({"admin": ADMIN_HASH}))
    users = {"admin"}
    daemon = None
    history: list[str] = []
    try:
        for round_number in range(ROUNDS):
            daemon = RunningDaemon(scene.state, scene.config, None, keep_files=True)
            check_restart(scene, daemon)
            work = Work(scene, daemon, round_number, users, rng)
            delay, everything = rng.uniform(*KILL_WINDOW), rng.random() < 0.5
            history.append(f"round {round_number}: kill {'everything' if everything else 'master+worker'} "
                           f"after {delay:.3f} s")
            work.start()
            time.sleep(delay)
            work.killed.set()
            kill(daemon, everything)
            work.join()
            assert not work.failures, f"requests failed before the kill: {work.failures}"
            check_files(scene, work)
            users = set(json.loads((scene.state / "users.json").read_text()))
            history[-1] += f" ({len(work.uploads)} uploads, {len(work.archives)} archives, {len(work.copies)} copies)"
        daemon = RunningDaemon(scene.state, scene.config, None, keep_files=True)
        check_restart(scene, daemon)
    except Exception as error:
        output = daemon.output() if daemon is not None else ""
        raise AssertionError(f"CRASH_SEED={seed}: {error}\n" + "\n".join(history) +
                             f"\n-- last daemon's output:\n{output[-4000:]}") from error
    finally:
        if daemon is not None:
            daemon.stop()
        for processes in scene.app_processes().values():
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
