"""The shipped config.json and demo app, started the way `make run` starts them (ports moved to free ones)."""

import re
import shutil
import sys
import time

import requests

from octyne_flask.config import parse_config
from tests.harness import REPO, RunningDaemon, free_port


def test_shipped_config_is_valid_and_runs_the_demo_app(tmp_path):
    text = (REPO / "config.json").read_text()
    config = parse_config(text)
    assert (config.port, config.web_ui.port, config.unix_socket.enabled) == (42069, 7877, True)
    assert set(config.servers) == {"demo"}
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    api_port, web_port = free_port(), free_port()
    moved = text.replace('"port": 42069', f'"port": {api_port}').replace('"port": 7877', f'"port": {web_port}')
    (tmp_path / "config.json").write_text(moved)
    socket_path = str(tmp_path / f"octyne.sock.{api_port}")  # the default location under TMPDIR
    daemon = RunningDaemon(tmp_path, {"port": api_port, "unixSocket": {"location": socket_path}}, users=None,
                           env={"TMPDIR": str(tmp_path)}, args=[sys.executable, "-m", "octyne_flask"],
                           wait=False, config_text=moved)
    try:
        daemon.wait_until_ready()
        output = daemon.output()
        password = re.search(r"default user 'admin' and password '([^']+)'", output).group(1)
        assert f"http://0.0.0.0:{api_port}" in output and f"octyne.sock.{api_port}" in output
        daemon.login("admin", password)
        assert daemon.get("/config").content == moved.encode()
        status, _, body = daemon.local("GET", "/accounts")
        assert (status, body) == (200, b'["admin"]\n')
        deadline = time.monotonic() + 10
        while daemon.get("/servers").json() != {"servers": {"demo": 1}}:
            assert time.monotonic() < deadline, daemon.get("/servers").text
            time.sleep(0.2)
        assert requests.get(f"http://127.0.0.1:{web_port}/api/").json()["version"] == "1.4.2"
    finally:
        daemon.stop()
