"""Password hashes in Octyne's formats: Argon2id PHC strings and legacy SHA-256 hex.

Octyne's salt is 16 ASCII characters (base64 of 12 random bytes) used as the
salt bytes themselves; the PHC string then stores those 16 bytes base64-encoded.
Keeping that exact recipe makes our hashes verify in Octyne and theirs in ours.
"""

import base64
import hashlib
import hmac
import secrets
import threading

from argon2 import low_level
from argon2.exceptions import VerificationError, VerifyMismatchError, InvalidHashError

TIME_COST = 1
MEMORY_COST_KIB = 51200
PARALLELISM = 4
HASH_LENGTH = 32

# Each Argon2 check takes about 50 MiB; a burst of logins must not take gigabytes.
_concurrent_hashes = threading.BoundedSemaphore(2)


def new_salt() -> bytes:
    """16 ASCII bytes: base64 of 12 random bytes, as Octyne makes them."""
    return base64.b64encode(secrets.token_bytes(12))


def hash_password(password: bytes, salt: bytes | None = None) -> str:
    """An Argon2id PHC string with Octyne's parameters."""
    with _concurrent_hashes:
        encoded = low_level.hash_secret(
            password,
            salt if salt is not None else new_salt(),
            time_cost=TIME_COST,
            memory_cost=MEMORY_COST_KIB,
            parallelism=PARALLELISM,
            hash_len=HASH_LENGTH,
            type=low_level.Type.ID,
        )
    return encoded.decode("ascii")


def _is_legacy_hash(stored: str) -> bool:
    return len(stored) == 64 and all(c in "0123456789abcdef" for c in stored)


def verify_password(password: bytes, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (Argon2id PHC or legacy SHA-256 hex)."""
    if stored.startswith("$argon2"):
        try:
            with _concurrent_hashes:
                return low_level.verify_secret(stored.encode("ascii"), password, low_level.Type.ID)
        except (VerifyMismatchError, VerificationError, InvalidHashError, UnicodeEncodeError):
            return False
    if _is_legacy_hash(stored):
        return hmac.compare_digest(hashlib.sha256(password).hexdigest(), stored)
    return False


_decoy_hash: str | None = None


def spend_like_a_check(password: bytes) -> bool:
    """Spend what checking a real Argon2id hash costs, then answer False.

    Used for unknown usernames, so a login's answer time does not tell
    which accounts exist.
    """
    global _decoy_hash
    if _decoy_hash is None:
        _decoy_hash = hash_password(secrets.token_bytes(16))
    verify_password(password, _decoy_hash)
    return False
