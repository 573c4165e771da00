"""``python -m octyne_flask``: run the daemon."""

import sys

from octyne_flask.cli import main

sys.exit(main())
