"""The console's wire pieces in isolation: the one-lock wake-up event and WebSocket text frames."""

from __future__ import annotations

import threading
import time

from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from octyne_flask.api.console_session import Wakeup, scrollback_text, text_frame, v1_frames, v2_frames
from octyne_flask.supervisor.console import ConsoleLog


def test_wakeup_behaves_like_an_event():
    wakeup = Wakeup()
    assert not wakeup.is_set() and wakeup.wait(0) is False
    wakeup.set()
    wakeup.set()  # setting twice is fine
    assert wakeup.wait(0) is True and wakeup.wait(0) is True  # waiting leaves it set
    wakeup.clear()
    assert wakeup.wait(0.01) is False
    wakeup.clear()  # clearing twice is fine


def test_wakeup_wakes_a_waiting_thread():
    wakeup = Wakeup()
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(wakeup.wait(5)))
    waiter.start()
    time.sleep(0.05)
    wakeup.set()
    waiter.join(1)
    assert woke == [True]


def parse_frames(data: bytes) -> list[str]:
    """Decode server frames with wsproto acting as the client."""
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(data)
    return [event.data for event in client.events() if isinstance(event, TextMessage)]


def test_text_frames_of_every_length_class_parse():
    for size in (0, 125, 126, 65535, 65536, 3 * 1024 * 1024):
        text = "é" * (size // 2) if size % 2 == 0 else "a" * size
        assert parse_frames(text_frame(text.encode())) == [text]


def test_v1_sends_a_frame_per_line_and_v2_one_output_message_per_batch():
    assert parse_frames(v1_frames(["one", "two"])) == ["one", "two"]
    assert parse_frames(v2_frames(["one", "two \"quoted\""])) == ['{"type":"output","data":"one\\ntwo \\"quoted\\""}']


def test_scrollback_is_sent_with_a_newline_before_every_line():
    log = ConsoleLog(10, 1024 * 1024, 1024 * 1024)
    assert scrollback_text(log.subscribe(None, lambda: None, lambda reason: None)[1]) == ""
    log.append(["a", "", "b"])
    assert scrollback_text(log.subscribe(None, lambda: None, lambda reason: None)[1]) == "\na\n\nb"
    log = ConsoleLog(10, 1024 * 1024, 1024 * 1024)
    log.append([""])
    assert scrollback_text(log.subscribe(None, lambda: None, lambda reason: None)[1]) == "\n"
