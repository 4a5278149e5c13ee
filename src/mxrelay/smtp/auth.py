"""SMTP AUTH credentials: a file of `user:bcrypt-hash` lines, checked off the event loop.

bcrypt is slow on purpose (tens of milliseconds per check), so checks run in a worker thread; an
unknown user costs the same as a wrong password, so timing does not reveal which users exist.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import bcrypt

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
