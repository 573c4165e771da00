"""The flask-sock extension instance, shared by the app factory and the console blueprint.

simple-websocket's package also imports its asyncio variants (``AioServer``,
``AioClient``), and with them asyncio: 1.1 MiB of the worker's memory for
classes the daemon never uses. A stand-in module takes their place before
simple-websocket is first imported; import it (and ``ConnectionClosed``) from
here so that this comes first.
"""

import sys
import types

if "simple_websocket" not in sys.modules:
    _stand_in = types.ModuleType("simple_websocket.aiows", "The asyncio variants, not loaded by octyne-flask.")
    _stand_in.AioServer = _stand_in.AioClient = None
    sys.modules["simple_websocket.aiows"] = _stand_in

from flask_sock import Sock  # noqa: E402 (after the stand-in)
from simple_websocket import ConnectionClosed  # noqa: E402,F401 (re-exported for the console modules)

sock = Sock()
