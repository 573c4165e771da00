"""Password hashes compatible with Octyne 1.4.2 in both directions."""

import base64
import json
from pathlib import Path

import pytest
from argon2.low_level import Type, hash_secret_raw

from octyne_flask.auth.passwords import hash_password, verify_password

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "octyne-1.4.2"
OCTYNE_PASSWORDS = {
    "admin": "NUg7obDaZl16ml26",
    "alice": "correct horse battery staple",
    "bob-2_x@y": "p@ss wörd ✓",
    "legacy": "legacy-password",
}


@pytest.fixture(scope="module")
def octyne_users():
    return json.loads((FIXTURES / "users.json").read_text())


@pytest.mark.parametrize("user", sorted(OCTYNE_PASSWORDS))
def test_hashes_written_by_octyne_verify(octyne_users, user):
    stored = octyne_users[user]
    assert verify_password(OCTYNE_PASSWORDS[user].encode("utf-8"), stored)
    assert not verify_password(b"wrong", stored)


def test_our_hash_matches_an_independent_argon2id_computation_with_octynes_parameters():
    stored = hash_password("s3cret ✓".encode())
    prefix, params, salt_b64, key_b64 = stored.rsplit("$", 3)
    assert prefix == "$argon2id$v=19" and params == "m=51200,t=1,p=4"
    salt = base64.b64decode(salt_b64 + "=" * (-len(salt_b64) % 4))
    assert len(salt) == 16 and len(base64.b64decode(salt)) == 12  # ASCII base64 of 12 random bytes
    key = hash_secret_raw("s3cret ✓".encode(), salt, time_cost=1, memory_cost=51200, parallelism=4,
                          hash_len=32, type=Type.ID)
    assert base64.b64encode(key).decode().rstrip("=") == key_b64


def test_every_hash_gets_a_new_salt():
    assert hash_password(b"same") != hash_password(b"same")


@pytest.mark.parametrize("stored", ["", "plain", "$argon2id$broken", "A" * 64, "$2b$10$bcrypt"])
def test_malformed_hashes_never_verify(stored):
    assert not verify_password(b"anything", stored)
