"""AUTH against guessing and timing: a failure budget per client address, bcrypt on threads of
its own, passwords longer than bcrypt's 72 bytes, and unknown users costing what known ones do.

The users file is written by Apache's `htpasswd -B`, as an operator would write it.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from pathlib import Path

import pytest

from mxrelay.passwords import CHECK_BACKLOG, UserTable, UserTableError
from mxrelay.rates import FailureBudget, client_key
from tests.support.htpasswd import htpasswd_file
from tests.support.passwords import hash_password
from tests.support.smtp_relay import RelayFactory, RelayThread, Wire, smtp_settings

LONG_PASSWORD = "correct horse battery staple, " * 3  # 90 bytes


def htpasswd_users(tmp_path: Path, cost: int, **users: str) -> UserTable:
    """A users file written by `htpasswd -B` (apache2-utils), loaded as the relay loads it."""
    return UserTable.load(htpasswd_file(tmp_path / "users", cost, **users))


def plain(user: str, password: str) -> str:
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def auth_relay(make_relay: RelayFactory, users: UserTable, **settings: object) -> RelayThread:
    values = {"auth_allow_plaintext": True, "error_limit": 1000, **settings}
    return make_relay(users=users, settings=smtp_settings(**values))


def session(relay: RelayThread, source: str = "127.0.0.1") -> Wire:
    wire = Wire(relay, source=source)
    wire.read()
    wire.command("EHLO c.example")
    return wire


def test_a_password_longer_than_72_bytes_logs_in_as_with_htpasswd(
    make_relay: RelayFactory, tmp_path: Path
) -> None:
    """htpasswd -B hashes the first 72 bytes; the relay checks the same 72 (bcrypt 5 raises on
    more, which ended the session with 421 and locked such users out)."""
    users = htpasswd_users(tmp_path, 4, app=LONG_PASSWORD)
    relay = auth_relay(make_relay, users)
    wire = session(relay)
    try:
        assert wire.command(plain("app", LONG_PASSWORD)) == "235 2.7.0 Authentication successful"
    finally:
        wire.close()
    assert len(LONG_PASSWORD.encode()) > 72
    same_start = UserTable({"app": hash_password(LONG_PASSWORD, rounds=4).encode()})
    assert asyncio.run(same_start.verify("app", LONG_PASSWORD[:72] + "anything else"))
    assert not asyncio.run(same_start.verify("app", LONG_PASSWORD[:71]))
    same_start.close()


def test_an_unknown_user_costs_what_a_known_one_does(
    make_relay: RelayFactory, tmp_path: Path
) -> None:
    """htpasswd's default cost is 5; a dummy hash of another cost told which users exist."""
    users = htpasswd_users(tmp_path, 8, app="s3cret", other="pa55")
    assert users.dummy.startswith(b"$2y$08$")
    relay = auth_relay(make_relay, users, auth_failure_limit=1000)

    def timed(user: str) -> float:
        wire = session(relay)
        try:
            started = time.perf_counter()
            assert wire.command(plain(user, "wrong")).startswith("535 5.7.8")
            return time.perf_counter() - started
        finally:
            wire.close()

    known = statistics.median(timed("app") for _ in range(5))
    unknown = statistics.median(timed("nobody") for _ in range(5))
    assert unknown < 3 * known, (unknown, known)


def test_failed_auth_is_throttled_per_client_address(
    make_relay: RelayFactory, tmp_path: Path
) -> None:
    users = htpasswd_users(tmp_path, 4, app="s3cret")
    relay = auth_relay(make_relay, users, auth_failure_limit=3)
    guesser = session(relay, "127.0.0.7")
    try:
        for n in range(3):
            assert guesser.command(plain("app", f"guess {n}")).startswith("535 5.7.8"), n
        assert guesser.command(plain("app", "guess 3")).startswith("454 4.7.0")
    finally:
        guesser.close()
    again = session(relay, "127.0.0.7")  # a new connection from the same address
    try:
        assert again.command(plain("app", "s3cret")).startswith("454 4.7.0")
    finally:
        again.close()
    other = session(relay, "127.0.0.8")  # another client is not held back
    try:
        assert other.command(plain("app", "s3cret")).startswith("235")
    finally:
        other.close()


def test_concurrent_attempts_cannot_overdraw_the_failure_budget(make_relay: RelayFactory) -> None:
    """Checks under way count as failures to come: 8 connections from one address sending AUTH
    at once, with a budget of 2, get 2 password checks (all 8 were checked, none throttled)."""
    users = UserTable({"app": hash_password("s3cret", rounds=10).encode()})
    relay = auth_relay(make_relay, users, auth_failure_limit=2)
    wires = [session(relay) for _ in range(8)]
    try:
        for wire in wires:  # all sent before any answer is read
            wire.send(plain("app", "wrong").encode() + b"\r\n")
        answers = [wire.read()[:3] for wire in wires]
    finally:
        for wire in wires:
            wire.close()
    assert sorted(answers) == ["454"] * 6 + ["535"] * 2


def test_concurrent_login_exchanges_cannot_overdraw_the_failure_budget(
    make_relay: RelayFactory,
) -> None:
    """AUTH LOGIN takes the password after a 334: the budget is asked again before the check,
    when other connections' checks may have begun."""
    users = UserTable({"app": hash_password("s3cret", rounds=10).encode()})
    relay = auth_relay(make_relay, users, auth_failure_limit=2)
    wires = [session(relay) for _ in range(8)]
    user = base64.b64encode(b"app").decode()
    try:
        for wire in wires:
            assert wire.command(f"AUTH LOGIN {user}") == "334 UGFzc3dvcmQ6"
        for wire in wires:
            wire.send(base64.b64encode(b"wrong") + b"\r\n")
        answers = [wire.read()[:3] for wire in wires]
    finally:
        for wire in wires:
            wire.close()
    assert sorted(answers) == ["454"] * 6 + ["535"] * 2


def test_auth_checks_do_not_wait_for_the_shared_executor(
    make_relay: RelayFactory, tmp_path: Path
) -> None:
    """Message building and Graph token requests use the loop's default executor; bcrypt has
    threads of its own, so a busy default executor does not delay a login."""
    users = htpasswd_users(tmp_path, 4, app="s3cret")
    relay = auth_relay(make_relay, users)

    async def occupy() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(64):  # more than any default executor has threads
            loop.run_in_executor(None, time.sleep, 3)

    relay.call(occupy())
    wire = session(relay)
    try:
        started = time.monotonic()
        assert wire.command(plain("app", "s3cret")).startswith("235")
        assert time.monotonic() - started < 2
    finally:
        wire.close()


async def test_checks_past_the_backlog_are_answered_busy_at_once() -> None:
    users = UserTable({"app": hash_password("s3cret", rounds=9).encode()})
    try:
        results = await asyncio.gather(
            *(users.verify("app", "wrong") for _ in range(CHECK_BACKLOG + 8))
        )
    finally:
        users.close()
    assert results.count(None) == 8
    assert results.count(False) == CHECK_BACKLOG


def test_failure_budget_refills_and_stays_bounded() -> None:
    now = [0.0]
    budget = FailureBudget(3, 60.0, capacity=100, clock=lambda: now[0])
    for _ in range(3):
        assert budget.allows("192.0.2.1")
        budget.failed("192.0.2.1")
    assert not budget.allows("192.0.2.1")
    now[0] = 19.0
    assert not budget.allows("192.0.2.1")
    now[0] = 20.5  # one failure's worth has aged out (3 per 60 s)
    assert budget.allows("192.0.2.1")
    for n in range(1000):
        budget.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(budget) == 100


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1", "2001:db8::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(host: str, key: str) -> None:
    assert client_key(host) == key


@pytest.mark.parametrize(
    "line", ["app:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "app:$2b$12$tooshort", "app:", ":$2b$"]
)
def test_a_users_file_line_that_is_no_bcrypt_hash_is_refused(tmp_path: Path, line: str) -> None:
    path = tmp_path / "users"
    path.write_text(f"# users\n{line}\n")
    with pytest.raises(UserTableError, match="line 2 is not user:bcrypt-hash"):
        UserTable.load(path)
