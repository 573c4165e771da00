"""Version numbers: the Octyne API level we implement, and our own release."""

API_VERSION = "1.4.2"
IMPLEMENTATION = "octyne-flask"
IMPLEMENTATION_VERSION = "0.1.0"
