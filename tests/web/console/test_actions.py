"""Operator actions in a real browser, against a relay's real API with an operator's HTTP Basic
login and messages held in its queue: each action, confirmed in the dialog, on one message (its
own page) and on a selection of the list, takes effect (in the page after its live update, and
read back through the API) and is on the audit page with who, what and how many; a release to a
refused address shows why. Viewers are shown no action; nothing goes out unselected or
unconfirmed. And a page on another origin, open in the same browser as the operator's login,
cannot act: its requests are refused and the relay is left as it was, while the same page acts
once its origin is listed (so the refusal is the origin check, not a missing login).

One relay for the module; each test sends messages of its own, found by a word of their subject."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Response, expect

from mxrelay.store import flags
from mxrelay.store.backend import Database
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter
from mxrelay.web.api_v1.mxrelay_queue import ACTIONS as QUEUE_ACTIONS
from tests.support.api_relay import OPERATOR, VIEWER, users_env
from tests.support.browser import RelayThread, logged_in
from tests.web.console.conftest import Recorder, hold_env

pytestmark = pytest.mark.slow

Prepare = Callable[[Database, Sequence[str]], Awaitable[object]]


def mail(word: str, number: int) -> bytes:
    return (
        f"From: Billing <billing@example.org>\r\nTo: Alex <alex@example.net>\r\n"
        f"Subject: Batch {word} {number}\r\nMessage-ID: <{word}-{number}@example.org>\r\n\r\n"
        f"Your invoice.\r\n"
    ).encode()


@dataclass(frozen=True, slots=True)
class Operated:
    """The relay, and the operator's view of it through the API (a script's requests: no
    browser headers), to set a scene and read an action's effect back."""

    relay: RelayThread
    api: httpx.Client

    @property
    def url(self) -> str:
        return self.relay.url

    def batch(self, word: str, count: int) -> list[str]:
        """`count` messages whose subject holds `word`; their IDs, newest first."""
        for number in range(count):
            self.relay.send("billing@example.org", ["alex@example.net"], mail(word, number))
        ids = list(self.listed(word))
        assert len(ids) == count
        return ids

    def listed(self, word: str) -> dict[str, dict[str, Any]]:
        """ID -> Mailpit's summary of the messages whose subject holds `word`, newest first."""
        found = self.api.get("api/v1/search", params={"query": f"subject:{word}"})
        found.raise_for_status()
        return {m["ID"]: m for m in found.json()["messages"]}

    def states(self, ident: str) -> set[str]:
        answer = self.api.get(f"api/v1/message/{ident}/deliveries")
        answer.raise_for_status()
        return {r["State"] for r in answer.json()["Recipients"]}

    def audited(self) -> int:
        answer = self.api.get("api/v1/mxrelay/audit", params={"limit": "1"})
        answer.raise_for_status()
        return int(answer.json()["Total"])

    def prepare(self, step: Prepare, ids: Sequence[str]) -> None:
        """Set the scene in the store itself, so no audit entry comes of it."""
        database = self.relay.database()
        self.relay.call(lambda: step(database, ids))


@pytest.fixture(scope="module")
def operated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operated]:
    folder = tmp_path_factory.mktemp("actions")
    with (
        RelayThread(hold_env(folder, **users_env(folder))) as relay,
        httpx.Client(base_url=relay.url, auth=OPERATOR, timeout=30) as api,
    ):
        yield Operated(relay, api)


def queue_step(action: str) -> Prepare:
    """The API's queue action `action` on these messages, done in the store."""

    async def step(database: Database, ids: Sequence[str]) -> None:
        admin, now = QueueAdmin(database), time.time()
        rows = await admin.list_entries(QueueFilter(message_ids=tuple(ids)), now=now, limit=100)
        assert await QUEUE_ACTIONS[action](admin, [row.entry for row in rows], now) == len(ids)

    return step


def flag_step(read: bool) -> Prepare:
    async def step(database: Database, ids: Sequence[str]) -> None:
        await flags.mark(database, ids, read)

    return step


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    label: str
    """The button."""
    audited: str
    """The action as the audit log names it."""
    before: Prepare | None = None
    """The scene every message of the test is set in first (new mail is held and unread)."""
    typed: str = ""
    """What the operator types in the dialog."""
    state: tuple[str, str] | None = None
    """The recipient's delivery state before and after."""
    read: tuple[bool, bool] | None = None
    tags: tuple[list[str], list[str]] | None = None
    gone: bool = False


CASES = [
    Case("read", "Mark read", "mark read", read=(False, True)),
    Case("unread", "Mark unread", "mark unread", flag_step(True), read=(True, False)),
    Case("tag", "Tag…", "tag", typed="urgent, billing", tags=([], ["billing", "urgent"])),
    Case("retry", "Retry now", "retry", queue_step("cancel"), state=("failed", "queued")),
    Case("hold", "Hold", "hold", queue_step("resume"), state=("queued", "held")),
    Case("resume", "Resume", "resume", state=("held", "queued")),
    Case("cancel", "Cancel delivery", "cancel", state=("held", "failed")),
    Case("delete", "Delete", "delete", gone=True),
]


def row(page: Page, ident: str) -> Locator:
    return page.locator(f'#messages tbody tr[data-id="{ident}"]')


def confirm(page: Page, bar: Locator, label: str, question: str, typed: str = "") -> Locator:
    """Click `label` in `bar`, check the dialog asks `question`, type `typed`, confirm; the
    bar's status line."""
    bar.get_by_role("button", name=label, exact=True).click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text(question)
    if typed:
        page.locator("#confirm-input").fill(typed)
    dialog.get_by_role("button", name="Confirm").click()
    return bar.locator(".action-status")


def expect_audited(
    page: Page, action: str, targets: Sequence[str], count: int | None, outcome: str = "ok"
) -> None:
    """The audit page's newest entry is the operator's `action` on `targets`."""
    nav = page.get_by_role("navigation", name="Sections")
    nav.get_by_role("link", name="Audit").click()
    entry = page.locator("table.audit tbody tr[data-audit]").first
    expect(entry.locator(".c-action")).to_have_text(action)
    expect(entry.locator(".c-actor")).to_have_text(OPERATOR[0])
    expect(entry.locator(".c-client")).to_have_text("127.0.0.1")
    assert sorted(entry.locator(".c-target").inner_text().split(",")) == sorted(targets)
    expect(entry.locator(".c-count")).to_have_text("" if count is None else str(count))
    expect(entry.locator(".c-outcome")).to_have_text(outcome)


@pytest.mark.parametrize("several", [False, True], ids=["one", "several"])
@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_an_action_takes_effect_and_is_audited(
    operated: Operated, module_browser: Browser, case: Case, several: bool
) -> None:
    word = ("many" if several else "one") + case.key
    ids = operated.batch(word, 4 if several else 2)
    targets, bystander = ids[:-1], ids[-1]  # the oldest is left alone
    if case.before is not None:
        operated.prepare(case.before, ids)
    audited = operated.audited()
    listing = "?q=" + quote(f"subject:{word}")
    seen = logged_in(module_browser, OPERATOR)
    page = seen.page
    try:
        if several:
            page.goto(operated.url + listing)
            expect(page.locator("#messages tbody tr[data-id]")).to_have_count(len(ids))
            for ident in targets:
                row(page, ident).locator("input[name=ids]").check()
            bar = page.get_by_role("toolbar", name="Actions on the selected messages")
            status = confirm(page, bar, case.label, "3 messages", case.typed)
        else:
            (ident,) = targets
            page.goto(f"{operated.url}message/{ident}?tab=recipients&back={quote(listing)}")
            if case.read is not None:  # opening the page read it
                operated.prepare(flag_step(case.read[0]), targets)
            bar = page.get_by_role("toolbar", name="Actions on this message")
            status = confirm(page, bar, case.label, "1 message", case.typed)
        if several or not case.gone:
            expect(status).to_have_text(f"{case.label}: done.")
        if not several and case.gone:  # the deleted message's page gives way to the list
            expect(page).to_have_url(re.compile(re.escape(listing) + "$"))
        elif not several:
            if case.state is not None:  # the page's recipients refresh themselves
                badge = page.locator("#panel table.recipients .badge")
                expect(badge).to_have_text(case.state[1])
            page.locator("[data-back]").click()

        # The list shows the effect, and the one message left out is as it was.
        for ident in ids:
            changed = ident in targets
            shown = row(page, ident)
            if case.gone:
                expect(shown).to_have_count(0 if changed else 1)
            if case.state is not None:
                expect(shown.locator(".c-state .badge")).to_have_text(case.state[changed])
            if case.read is not None:
                expect(shown).to_have_class("read" if case.read[changed] else "unread")
            if case.tags is not None:
                expect(shown.locator(".badge.tag")).to_have_text(case.tags[changed])
        listed = operated.listed(word)
        assert sorted(listed) == sorted([bystander] if case.gone else ids)
        for ident, summary in listed.items():
            changed = ident in targets
            if case.read is not None:
                assert summary["Read"] is case.read[changed]
            if case.tags is not None:
                assert sorted(summary["Tags"]) == case.tags[changed]
            if case.state is not None:
                assert operated.states(ident) == {case.state[changed]}

        expect_audited(page, case.audited, targets, len(targets))
        assert operated.audited() == audited + 1
        assert seen.errors == []
    finally:
        page.context.close()


@pytest.mark.parametrize(
    ("address", "accepted"),
    [("audit@example.net", True), ("nobody@nowhere.invalid", False)],
    ids=["accepted", "refused"],
)
def test_a_copy_is_released_or_the_refusal_shown(
    operated: Operated, module_browser: Browser, address: str, accepted: bool
) -> None:
    word = "releasecopy" if accepted else "releaserefused"
    (original,) = operated.batch(word, 1)
    listing = "?q=" + quote(f"subject:{word}")
    page = logged_in(module_browser, OPERATOR).page
    try:
        page.goto(f"{operated.url}message/{original}?back={quote(listing)}")
        bar = page.get_by_role("toolbar", name="Actions on this message")
        status = confirm(page, bar, "Release a copy…", "Send a copy of this message", address)
        if accepted:
            expect(status).to_have_text("Release a copy…: done.")
        else:  # the relay's reply, with the reason it refused the address
            expect(status).to_contain_text(
                f"Release a copy… failed (400): SMTP error: 550 5.1.2 <{address}>"
            )
            expect(status).to_contain_text("special-use")
        page.locator("[data-back]").click()
        rows = page.locator("#messages tbody tr[data-id]")
        expect(rows).to_have_count(2 if accepted else 1)
        listed = list(operated.listed(word))
        if accepted:
            copy = listed[0]
            expect(row(page, copy)).to_be_visible()
            answer = operated.api.get(f"api/v1/message/{copy}/deliveries").json()
            assert answer["ReleasedFrom"] == original
            assert [r["Address"] for r in answer["Recipients"]] == [address]
        else:
            assert listed == [original]
        if accepted:
            expect_audited(page, "release", [original], 1)
        else:
            expect_audited(page, "release", [original], None, "refused")
    finally:
        page.context.close()


def test_nothing_goes_out_unselected_or_unconfirmed(
    operated: Operated, module_browser: Browser
) -> None:
    (ident,) = operated.batch("unconfirmed", 1)
    audited = operated.audited()
    page = logged_in(module_browser, OPERATOR).page
    try:
        page.goto(operated.url + "?q=" + quote("subject:unconfirmed"))
        bar = page.get_by_role("toolbar", name="Actions on the selected messages")
        bar.get_by_role("button", name="Delete").click()
        expect(bar.locator(".action-status")).to_have_text("Select one or more messages first.")
        expect(page.locator("#confirm-dialog")).not_to_be_visible()
        row(page, ident).locator("input[name=ids]").check()
        bar.get_by_role("button", name="Delete").click()
        dialog = page.locator("#confirm-dialog")
        expect(dialog).to_contain_text("Delete 1 message from the log?")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).not_to_be_visible()
    finally:
        page.context.close()
    assert list(operated.listed("unconfirmed")) == [ident]
    assert operated.audited() == audited


def test_viewers_see_no_action(operated: Operated, module_browser: Browser) -> None:
    operated.batch("viewed", 1)
    page = logged_in(module_browser, VIEWER).page
    try:
        page.goto(operated.url)
        expect(page.locator("#messages tbody tr[data-id]").first).to_be_visible()
        expect(page.locator("button[data-action]")).to_have_count(0)
        expect(page.locator("input[name=ids]")).to_have_count(0)
        page.locator("#messages tbody tr[data-id] .c-subject a").first.click()
        expect(page.locator(".message-head h1")).to_be_visible()
        expect(page.locator("button[data-action]")).to_have_count(0)
    finally:
        page.context.close()


# --- a page elsewhere -------------------------------------------------------------------------

JSON, TEXT = "application/json", "text/plain"

FETCH = """async ([relay, tries]) => {
  const seen = [];
  for (const [method, path, body, type, mode] of tries) {
    try {
      const answer = await fetch(relay + path, {method, body, mode, credentials: "include",
                                                headers: {"Content-Type": type}});
      seen.push(answer.type + " " + answer.status);
    } catch (error) {
      seen.push(error.name);
    }
  }
  return seen;
}"""
"""Each (method, path, body, Content-Type, mode) fetched from the relay with the browser's
stored login; what the script saw of each."""


def tries(ident: str) -> list[tuple[str, str, str, str, str]]:
    """The console's actions on `ident` as another page's script would send them: with JSON
    (a preflight first), and as text/plain (no preflight: the request itself goes out)."""
    ids = json.dumps({"IDs": [ident]})
    release = (f"api/v1/message/{ident}/release", json.dumps({"To": ["x@example.net"]}))
    return [
        ("PUT", "api/v1/messages", json.dumps({"IDs": [ident], "Read": True}), JSON, "cors"),
        ("PUT", "api/v1/tags", json.dumps({"IDs": [ident], "Tags": ["taken"]}), JSON, "cors"),
        ("DELETE", "api/v1/messages", ids, JSON, "cors"),
        ("POST", "api/v1/mxrelay/messages/hold", ids, JSON, "cors"),
        ("POST", "api/v1/mxrelay/messages/cancel", ids, TEXT, "cors"),
        ("POST", *release, TEXT, "cors"),
        ("POST", "api/v1/mxrelay/messages/cancel", ids, TEXT, "no-cors"),
    ]


def form_page(relay: str, ident: str, frame: bool = False) -> str:
    """A page that posts a form to the relay as soon as it loads: a JSON body in a text/plain
    form (a field named `{"IDs":["…"],"x":"` with the value `"}`), to cancel `ident`'s
    delivery; with `frame`, from a sandboxed frame (its `Origin` is `null`) into the page."""
    name = json.dumps({"IDs": [ident], "x": ""})[:-2]
    form = (
        f'<form method="post" enctype="text/plain" target="_top" '
        f'action="{relay}api/v1/mxrelay/messages/cancel">'
        f"<input type=\"hidden\" name='{name}' value='\"}}'></form>"
        "<script>document.forms[0].submit()</script>"
    )
    if not frame:
        return f"<!doctype html><title>Win a prize</title>{form}"
    srcdoc = form.replace("&", "&amp;").replace('"', "&quot;")
    return (
        "<!doctype html><title>Win a prize</title><iframe "
        f'sandbox="allow-forms allow-scripts allow-top-navigation" srcdoc="{srcdoc}"></iframe>'
    )


@pytest.fixture
def elsewhere() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


@dataclass(frozen=True, slots=True)
class Attempted:
    script: list[str]
    """What the page's script saw of each fetch: the status, or the error it got."""
    answered: list[tuple[str, str, str, int]]
    """What the relay answered the page and its frame: (method, path, Origin, status)."""
    posted: list[str]
    """The text of the relay's answer to each form the page posted."""


def reads_page(relay: str, shown: Sequence[str]) -> str:
    """A page that shows the newest message as an image (no ID needed) and frames the HTML
    view of `shown[0]` and the console's page of `shown[1]`: reads that mark a message read."""
    view, page = shown
    return (
        f'<!doctype html><title>Elsewhere</title><img src="{relay}api/v1/message/latest" alt="">'
        f'<iframe src="{relay}view/{view}.html"></iframe><iframe src="{relay}message/{page}">'
        "</iframe>"
    )


def attack(
    browser: Browser,
    relay: str,
    site: Recorder,
    host: str,
    ident: str,
    *,
    framed: bool = True,
    shown: Sequence[str] = (),
) -> Attempted:
    """The operator has the console open; a page at `host` on `site`'s port, in the same
    browser, tries to act on `ident` with fetch, then with forms posted as it loads (with
    `framed`, from a sandboxed frame too), then (with `shown`) loads messages (`reads_page`)."""
    origin = f"http://{host}:{site.server.server_address[1]}/"
    site.pages.update(
        {
            "/empty.html": "<!doctype html><title>Elsewhere</title>",
            "/form.html": form_page(relay, ident),
            "/framed.html": form_page(relay, ident, frame=True),
        }
    )
    if shown:
        site.pages["/reads.html"] = reads_page(relay, shown)
    console = logged_in(browser, OPERATOR).page
    try:
        console.goto(relay)
        expect(console.locator("button[data-action]").first).to_be_visible()
        page = console.context.new_page()
        answers: list[Response] = []
        page.on("response", lambda response: answers.append(response))
        page.goto(origin + "empty.html")
        script: list[str] = page.evaluate(FETCH, [relay, tries(ident)])
        posted = []
        for form in ("form.html", "framed.html") if framed else ("form.html",):
            page.goto(origin + form)
            page.wait_for_url(relay + "**")
            posted.append(page.locator("body").inner_text().strip())
        if shown:
            page.goto(origin + "reads.html")  # once loaded, every image and frame has ended
        answered = [
            (
                r.request.method,
                r.url.removeprefix(relay),
                r.request.headers.get("origin", ""),
                r.status,
            )
            for r in answers
            if r.url.startswith(relay)
        ]
        return Attempted(script, answered, posted)
    finally:
        console.context.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["same-site", "cross-site"])
def test_a_page_elsewhere_cannot_act_with_the_operators_login(
    operated: Operated, module_browser: Browser, elsewhere: Recorder, host: str
) -> None:
    word = "elsewhere" + host.replace(".", "")
    ids = operated.batch(word, 3)
    ident = ids[0]  # the newest: what `latest` names
    audited = operated.audited()
    attempted = attack(module_browser, operated.url, elsewhere, host, ident, shown=ids[1:])
    # The page's script learns nothing: every fetch fails, as the relay's answers carry no
    # CORS header; those with a preflight never went out, as the relay refused the preflight.
    assert attempted.script == ["TypeError"] * len(tries(ident))
    assert attempted.posted == ["Blocked due to CORS violation"] * 2
    acting = [answer for answer in attempted.answered if answer[0] != "GET"]
    assert all(status == 403 for *_, status in acting), attempted.answered
    site = f"http://{host}:{elsewhere.server.server_address[1]}"
    assert {answer[:3] for answer in acting} >= {
        ("OPTIONS", "api/v1/messages", site),
        ("OPTIONS", "api/v1/tags", site),
        ("OPTIONS", "api/v1/mxrelay/messages/hold", site),
        ("POST", "api/v1/mxrelay/messages/cancel", site),  # the form
        ("POST", "api/v1/mxrelay/messages/cancel", "null"),  # the sandboxed frame's form
    }
    # The relay is as it was, and nothing was done in the operator's name: not even the
    # messages the page showed or framed are marked read.
    listed = operated.listed(word)
    assert sorted(listed) == sorted(ids)
    assert {(m["Read"], tuple(m["Tags"])) for m in listed.values()} == {(False, ())}
    assert operated.states(ident) == {"held"}
    assert operated.audited() == audited


def test_the_same_page_acts_once_its_origin_is_listed(
    module_browser: Browser, elsewhere: Recorder, tmp_path: Path
) -> None:
    """The control: with the page's origin in MXRELAY_UI_CORS_ORIGINS, the same requests that
    need no preflight go out with the operator's login and act, so what refuses them above is
    the origin check. (Those with a preflight still fail: the relay's CORS answers, as
    Mailpit's, never allow credentials.)"""
    origin = f"http://127.0.0.1:{elsewhere.server.server_address[1]}"
    env = hold_env(tmp_path, **users_env(tmp_path), MXRELAY_UI_CORS_ORIGINS=origin)
    with RelayThread(env) as relay, httpx.Client(base_url=relay.url, auth=OPERATOR) as api:
        operated = Operated(relay, api)
        (ident,) = operated.batch("listed", 1)
        attempted = attack(
            module_browser, operated.url, elsewhere, "127.0.0.1", ident, framed=False
        )
        assert [json.loads(text)["Action"] for text in attempted.posted] == ["cancel"]
        assert operated.states(ident) == {"failed"}
        assert len(operated.listed("listed")) == 2  # the copy released to x@example.net
        entries = api.get("api/v1/mxrelay/audit").json()["Entries"]
        # The simple requests (no preflight) acted: cancel and release by fetch, cancel
        # by no-cors fetch and by the form.
        assert sorted(e["Action"] for e in entries) == ["cancel", "cancel", "cancel", "release"]
        assert {e["Actor"] for e in entries} == {OPERATOR[0]}
