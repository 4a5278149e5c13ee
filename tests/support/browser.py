"""A real browser for the console's tests: Debian's Chromium driven by Playwright, one per test
run (`chromium`, connected to by each test as `browser`), a fresh context and page per test
(`page`), and a relay running in a thread of
its own (`RelayThread`), so the tests can be plain functions, as Playwright's sync API wants.

Playwright's own browser download is never used: the browser is `/usr/bin/chromium`, installed
by `make test` (DEB_TEST_PACKAGES), started once per run (`chromium`). Each page records what it and its frames tried: console
messages, page errors and every request, so a test can show from the page itself that a hostile
message ran nothing and loaded nothing.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    sync_playwright,
)

from mxrelay.app import Relay
from tests.support.relay_app import running_relay, send_mail

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"
T = TypeVar("T")


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One headless Chromium for the whole run, as a process of its own; its DevTools endpoint.

    Not Playwright's `launch()`: Playwright's sync API holds an event loop in the test's thread
    for as long as it is open, which would stop every asyncio test after the first browser test.
    So the browser outlives the tests and each test connects to it (`browser`) and disconnects."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    profile = tmp_path_factory.mktemp("chromium")
    # --no-sandbox: the tests run as root (CI does), where Chromium's sandbox cannot start.
    process = subprocess.Popen(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    endpoint = None
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        while endpoint is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            endpoint = found.group(1) if found else None
        if endpoint is None:
            raise RuntimeError("chromium did not open its DevTools endpoint")
        stream = process.stderr

        def drain() -> None:  # keep the pipe from filling, close it at its end
            stream.read()
            stream.close()

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if endpoint is not None:
            drainer.join(timeout=10)
        elif process.stderr is not None:
            process.stderr.close()


def _connected(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        connected = playwright.chromium.connect_over_cdp(chromium)
        try:
            yield connected
        finally:
            connected.close()


@pytest.fixture
def browser(chromium: str) -> Iterator[Browser]:
    """The run's Chromium, connected to for this test through Playwright's sync API."""
    yield from _connected(chromium)


@pytest.fixture(scope="module")
def module_browser(chromium: str) -> Iterator[Browser]:
    """The run's Chromium, connected to once for a module of many short browser tests (a
    connection costs half a second). Only for a module without asyncio tests: the sync API
    holds its event loop in the tests' thread until the module ends."""
    yield from _connected(chromium)


@dataclass
class Watched:
    """A page and what it (and its frames) did."""

    page: Page
    console: list[ConsoleMessage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    """Every request the page or a frame of it started, blocked ones included."""
    answered: list[str] = field(default_factory=list)
    """The URL of every request that got a response."""
    failed: dict[str, str] = field(default_factory=dict)
    """URL -> why the request failed (`csp` when a Content-Security-Policy blocked it)."""

    def urls(self) -> list[str]:
        return [request.url for request in self.requests]


def watched(context: BrowserContext) -> Watched:
    page = context.new_page()
    seen = Watched(page)
    page.on("console", lambda message: seen.console.append(message))
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    context.on("request", lambda request: seen.requests.append(request))
    context.on("response", lambda response: seen.answered.append(response.url))
    context.on(
        "requestfailed",
        lambda request: seen.failed.__setitem__(request.url, request.failure or ""),
    )
    return seen


def logged_in(browser: Browser, user: tuple[str, str]) -> Watched:
    """A page in a context of its own holding `user`'s (name, password) HTTP Basic login."""
    name, password = user
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        http_credentials={"username": name, "password": password},
    )
    return watched(context)


@pytest.fixture
def page(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    try:
        yield watched(context)
    finally:
        context.close()


class RelayThread:
    """`running_relay(env)` in a thread with its own event loop; `call()` runs a coroutine
    there (a store read, an SMTP send) and returns its result."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._loop = asyncio.new_event_loop()
        self._ready: Future[Relay] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with running_relay(self._env) as relay:
                self._ready.set_result(relay)
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    def __enter__(self) -> RelayThread:
        self._thread.start()
        self.relay = self._ready.result(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    @property
    def url(self) -> str:
        root = self.relay.settings.web.ui_webroot
        return f"http://127.0.0.1:{self.relay.web_port}{root}"

    def send(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        self.call(lambda: send_mail(self.relay, sender, recipients, data))

    def database(self) -> Any:
        return self.relay.queue_stage.db if self.relay.queue_stage else None
