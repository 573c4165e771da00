"""Console compaction with a real app: its output is read on while the console's text is being compressed."""

from __future__ import annotations

import sys
import textwrap
import threading

from octyne_flask.config import config_from_document
from octyne_flask.supervisor import Supervisor
from octyne_flask.supervisor import console as console_module
from tests.harness import wait_until

PAUSER = """
import sys, time
out = sys.stdout
out.write("".join(f"before {i} " + "b" * 60 + "\\n" for i in range(2000)))
out.flush()
time.sleep(1.5)  # quiet for over a second: the console is compacted
out.write("".join(f"after {i} " + "a" * 200 + "\\n" for i in range(2000)))  # more than a pipe holds
out.flush()
time.sleep(60)
"""


def test_the_apps_output_is_read_on_while_its_console_is_being_compressed(tmp_path, monkeypatch):
    (tmp_path / "pauser.py").write_text(textwrap.dedent(PAUSER))
    compressing, go_on = threading.Event(), threading.Event()
    pack = console_module.pack

    def held_pack(block):  # the real compression, held up until the app's later output has been read
        compressing.set()
        go_on.wait(30)
        return pack(block)

    monkeypatch.setattr(console_module, "pack", held_pack)
    config = config_from_document({"stopGracePeriod": 1, "servers": {
        "pauser": {"directory": str(tmp_path), "command": f"{sys.executable} pauser.py"}}})
    supervisor = Supervisor(config)
    supervisor.start_enabled()
    try:
        assert compressing.wait(10)
        server = supervisor.get("pauser")
        wait_until(lambda: server.console.scrollback()[-1].startswith("after 1999 "), timeout=5)
    finally:
        go_on.set()
        supervisor.shutdown()
    after = [line for line in server.console.scrollback() if line.startswith("after")]
    assert after == [f"after {i} " + "a" * 200 for i in range(2000)]
