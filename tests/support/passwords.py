"""bcrypt hashes for users files in tests, as `htpasswd -B` writes them."""

from __future__ import annotations

import bcrypt

from mxrelay.passwords import PASSWORD_BYTES


def hash_password(password: str, rounds: int = 4) -> str:
    """A bcrypt hash of `password` (cut to bcrypt's 72 bytes, as htpasswd does); few rounds, fast."""
    candidate = password.encode("utf-8")[:PASSWORD_BYTES]
    return bcrypt.hashpw(candidate, bcrypt.gensalt(rounds)).decode("ascii")
