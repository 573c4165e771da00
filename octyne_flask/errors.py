"""The one error type the API raises, and the messages shared by many endpoints.

Blueprints and guards raise ``ApiError(status, message)``; a single handler
renders it as ``{"error": message}`` with ``Content-Type: application/json``.
Plain modules (``auth``, ``files``, ``supervisor``) raise it too: it does not
depend on Flask.
"""

NOT_AUTHENTICATED = "You are not authenticated to access this resource!"
FORBIDDEN = "You are not allowed to access this resource!"
INTERNAL = "Internal Server Error!"
NO_SUCH_SERVER = "This server does not exist!"
INVALID_JSON = "Invalid JSON body!"
CREDENTIALS_MISSING = "Username or password not provided!"
# 405 messages that several endpoints share (api.md gives each endpoint its own wording).
ONLY_GET = "Only GET is allowed!"
ONLY_POST = "Only POST is allowed!"
ONLY_GET_AND_POST = "Only GET and POST is allowed!"  # Octyne's grammar, kept as clients see it
ONLY_GET_AND_PATCH = "Only GET and PATCH are allowed!"


class ApiError(Exception):
    """A failure that maps to one HTTP status and one exact error string.

    ``extra`` holds additional JSON fields (e.g. ``detail``) sent beside
    ``error``; clients that only read ``error`` are unaffected. ``headers``
    are response headers the status calls for (``Allow`` on a 405).
    """

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        """The JSON body of the response."""
        return {"error": self.message, **self.extra}


def internal_error(error: OSError) -> ApiError:
    """``Internal Server Error!`` for an unexpected OS failure, the reason (never a path) in ``detail``."""
    return ApiError(500, INTERNAL, detail=error.strerror or type(error).__name__)
