"""SMTP AUTH credentials: a file of `user:bcrypt-hash` lines, checked off the event loop.

bcrypt is slow on purpose (tens of milliseconds per check), so checks run in a worker thread; an
unknown user costs the same as a wrong password, so timing does not reveal which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from pathlib import Path

import bcrypt

from mxrelay.model import Reply
from mxrelay.smtp import replies

Challenge = Callable[[str], Awaitable[str | None]]
"""Send a 334 prompt (base64), return the client's answer; None when the client cancelled."""

# A hash of a random string, checked against when the user is unknown (equal cost, never matches).
_DUMMY_HASH = b"$2b$12$LX2G1SPgTNR2h5aAMacVN.jIcOE55akvYtLHBCmN5dK62oTBKPAw."


class UserTableError(ValueError):
    pass


class UserTable:
    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users

    @classmethod
    def load(cls, path: Path) -> UserTable:
        users: dict[str, bytes] = {}
        text = path.read_text(encoding="utf-8")
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user or not hashed.startswith("$2"):
                raise UserTableError(f"line {number} is not user:bcrypt-hash")
            users[user] = hashed.encode("ascii")
        return cls(users)

    def __len__(self) -> int:
        return len(self._users)

    async def verify(self, username: str, password: str) -> bool:
        hashed = self._users.get(username)
        candidate = password.encode("utf-8")
        matched = await asyncio.to_thread(bcrypt.checkpw, candidate, hashed or _DUMMY_HASH)
        return hashed is not None and matched


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash for a users file line (`mxrelay` does not need the plain password)."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


async def read_credentials(
    mechanism: str, initial: str, challenge: Challenge
) -> tuple[str, str] | Reply:
    """Run the PLAIN (RFC 4616) or LOGIN exchange: (user, password), or the reply that ends it.

    Raises ValueError when an answer is not valid base64 or UTF-8.
    """
    try:
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            response = initial or await challenge("")
            if response is None:
                return replies.AUTH_CANCELLED
            _authzid, username, password = _decode(response).split("\0")
            return username, password
        if mechanism == "LOGIN":
            user_response = initial or await challenge("VXNlcm5hbWU6")  # "Username:"
            if user_response is None:
                return replies.AUTH_CANCELLED
            password_response = await challenge("UGFzc3dvcmQ6")  # "Password:"
            if password_response is None:
                return replies.AUTH_CANCELLED
            return _decode(user_response), _decode(password_response)
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    return replies.AUTH_BAD_MECHANISM


def _decode(answer: str) -> str:
    return base64.b64decode(answer, validate=True).decode("utf-8")
