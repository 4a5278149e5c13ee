"""A local HTTPS stand-in for the Microsoft identity platform and Graph's `sendMail`.

One server on 127.0.0.1 (port 0) with a certificate from a throw-away `trustme` CA whose PEM is
written to a file: mxrelay trusts it through `SSL_CERT_FILE`, exactly as it would trust a corporate
proxy's CA. It runs its own event loop in a thread, so synchronous code (MSAL, the graph-test
command, a benchmark) and async tests can all talk to it.

The identity half (discovery, token endpoint, client-assertion checks) is in
`graph_standin_tokens.py`. The Graph half here serves `POST /v1.0/users/{mailbox}/sendMail` the way
Graph does: bearer token checked (expiry, audience, signature, `Mail.Send` role), mailbox known and
inside the app's scope, body base64-decoded, MIME parsed, and recipients taken from To/Cc/Bcc as
Exchange takes them (there is no envelope). It answers 202 with a `request-id`.

Tests script faults in the order requests arrive (`script(...)`): any status with an error code and
headers (429 with Retry-After in seconds or as an HTTP date, 503, 401, 403, 400, 413), a hang past
the client's timeout, or accepting the message and dropping the connection before answering. With
`limits`, it enforces Microsoft's per-mailbox limits itself (sliding windows by arrival time) and
answers 429 when a client exceeds them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email
import email.policy
import math
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import h11
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    NoEncryption,
    load_pem_private_key,
    pkcs12,
)

from tests.support.graph_standin_tokens import AppRegistration, IdentityPlatform, Reply

TENANT = "0c8a1f52-7d3e-4b6a-9f21-5e4d3c2b1a09"
TENANT_DOMAIN = "contoso.example"
CLIENT_ID = "5f1d9c7e-2a4b-4e8f-8c3d-7b6a5e4f3d2c"
SECRET = "s3cr3t~Value.With-Chars_0123456789"
MAILBOX = "relay@contoso.example"


# --- scripted answers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """Answer `status` with Graph's error body (`code`, `message`) and extra headers."""

    status: int
    code: str | None = None
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hang:
    """Read the request, then say nothing for `seconds` (past the client's timeout) and close."""

    seconds: float = 3600.0


@dataclass(frozen=True)
class Drop:
    """Accept the message (Exchange has it), then drop the connection without an answer."""


Fault = Answer | Hang | Drop


def throttle(retry_after: str, header: str = "Retry-After") -> Answer:
    return Answer(
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        ((header, retry_after),),
    )


def unavailable(retry_after: str | None = None) -> Answer:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Answer(503, "ServiceUnavailable", "Service Unavailable", headers)


EXPIRED_TOKEN = Answer(
    401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
)
ACCESS_DENIED = Answer(
    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
)
SEND_AS_DENIED = Answer(
    403,
    "ErrorSendAsDenied",
    "The user account which was used to submit this request does not have the right to send "
    "mail on behalf of the specified sending account.",
)
INVALID_RECIPIENTS = Answer(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
INVALID_BASE64 = Answer(
    400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
)
TOO_LARGE = Answer(413, "RequestEntityTooLarge", "The request is too large.")


# --- what it records ----------------------------------------------------------------------


@dataclass(frozen=True)
class SentMessage:
    """A message Exchange accepted: who it goes to is what the headers say."""

    mailbox: str
    mime: bytes
    body: bytes
    recipients: tuple[str, ...]
    from_address: str | None
    request_id: str
    client_request_id: str | None
    at: float


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None


@dataclass
class Mailbox:
    address: str
    send_as: set[str] = field(default_factory=set)
    in_scope: bool = True


@dataclass(frozen=True)
class MailboxLimits:
    """Microsoft's limits, as (count, window seconds); None switches one off."""

    messages: tuple[int, float] | None = (30, 60.0)
    requests: tuple[int, float] | None = (10_000, 600.0)
    upload_bytes: tuple[int, float] | None = (150_000_000, 300.0)
    recipients: tuple[int, float] | None = (10_000, 86_400.0)
    concurrency: int | None = 4


class _Window:
    def __init__(self, limit: tuple[int, float]) -> None:
        self.count, self.span = limit
        self.events: deque[tuple[float, int]] = deque()

    def wait(self, now: float, weight: int) -> float:
        while self.events and self.events[0][0] <= now - self.span:
            self.events.popleft()
        excess = sum(w for _, w in self.events) + weight - self.count
        if excess <= 0:
            return 0.0
        for at, amount in self.events:
            excess -= amount
            if excess <= 0:
                return at + self.span - now
        return math.inf

    def add(self, now: float, weight: int) -> None:
        self.events.append((now, weight))


class GraphStandIn:
    """The identity platform and Graph on one HTTPS port. Use `GraphStandIn.running(dir)`."""

    def __init__(
        self,
        directory: Path,
        *,
        latency: float = 0.0,
        limits: MailboxLimits | None = None,
        request_limit: int = 4 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        self.latency = latency
        self.limits = limits
        self.request_limit = request_limit
        self.ca = trustme.CA()
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "standin-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.port = 0
        self.identity: IdentityPlatform
        self.mailboxes: dict[str, Mailbox] = {MAILBOX: Mailbox(MAILBOX)}
        self.lock = threading.Condition()
        self._script: deque[Fault] = deque()
        self._token_script: deque[Reply] = deque()
        self.messages: list[SentMessage] = []
        self.requests: list[RecordedRequest] = []
        self.throttled = 0
        self.throttle_reasons: list[str] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._windows: dict[tuple[str, str], _Window] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running(cls, directory: Path, **options: Any) -> Iterator[GraphStandIn]:
        standin = cls(directory, **options)
        standin.start()
        try:
            yield standin
        finally:
            standin.stop()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="graph-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError(f"stand-in did not start: {self._failure!r}")
        self.identity = IdentityPlatform(
            self.base_url,
            self.base_url,
            TENANT,
            (TENANT_DOMAIN,),
            {CLIENT_ID: AppRegistration(CLIENT_ID, secret=SECRET)},
        )

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(10)
            assert not self._thread.is_alive(), "stand-in thread did not stop"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections[task] = writer
            try:
                await self._connection(reader, writer)
            finally:
                connections.pop(task, None)

        server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for writer in list(connections.values()):
                writer.transport.abort()  # open keep-alive connections end; hangs end on _stop
            await asyncio.wait_for(asyncio.gather(*connections, return_exceptions=True), 10)

    # --- configuration and inspection (any thread) ------------------------------------------

    @property
    def app(self) -> AppRegistration:
        return self.identity.apps[CLIENT_ID]

    def environ(self, **extra: str) -> dict[str, str]:
        """Settings that point mxrelay at this stand-in with the secret credential."""
        env = {
            "SSL_CERT_FILE": str(self.ca_file),
            "MXRELAY_GRAPH_TENANT_ID": TENANT,
            "MXRELAY_GRAPH_CLIENT_ID": CLIENT_ID,
            "MXRELAY_GRAPH_CLIENT_SECRET": SECRET,
            "MXRELAY_GRAPH_AUTHORITY": self.base_url,
            "MXRELAY_GRAPH_ENDPOINT": self.base_url,
        }
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}

    def issue_certificate(self, *, pfx: bool = False, password: bytes | None = None) -> Path:
        """Register a new RSA certificate on the app and write its key and certificate to a
        file: PEM (key then certificate) or PFX, optionally encrypted with `password`."""
        leaf = self.ca.issue_cert("mxrelay-app", key_type=trustme.KeyType.RSA)
        certificate = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
        key = load_pem_private_key(leaf.private_key_pem.bytes(), None)
        encryption = BestAvailableEncryption(password) if password else NoEncryption()
        with self.lock:
            self.app.certificate = certificate
        if pfx:
            path = self.directory / "app.pfx"
            path.write_bytes(
                pkcs12.serialize_key_and_certificates(b"app", key, certificate, None, encryption)  # type: ignore[arg-type]
            )
        else:
            from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat

            path = self.directory / "app.pem"
            key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
            path.write_bytes(key_pem + leaf.cert_chain_pems[0].bytes())
        return path

    def add_mailbox(
        self, address: str, *, send_as: tuple[str, ...] = (), in_scope: bool = True
    ) -> None:
        with self.lock:
            self.mailboxes[address.lower()] = Mailbox(
                address.lower(), {a.lower() for a in send_as}, in_scope
            )

    def script(self, *faults: Fault) -> None:
        """Answers for the next sendMail requests, in order; then normal service resumes."""
        with self.lock:
            self._script.extend(faults)

    def script_token(self, *replies: Reply) -> None:
        with self.lock:
            self._token_script.extend(replies)

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired as far as Graph is concerned."""
        with self.lock:
            self.identity.revoked_before = time.time()

    def sent(self) -> list[SentMessage]:
        with self.lock:
            return list(self.messages)

    def send_requests(self) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/sendMail")]

    def token_requests(self) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/token")]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` holds (checked whenever a request completes)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the stand-in did not reach the expected state")
                self.lock.wait(remaining)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[SentMessage]:
        self.wait_for(lambda: len(self.messages) >= count, timeout)
        return self.sent()

    async def arrived(self, count: int, within: float = 10.0) -> list[SentMessage]:
        """`wait_for_messages` for async tests: waits in a thread, the event loop runs on."""
        return await asyncio.to_thread(self.wait_for_messages, count, within)

    # --- HTTP ---------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                received = await _read_request(conn, reader)
                if received is None:
                    return
                request, body = received
                path = request.target.decode("ascii", "replace")
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
                record = RecordedRequest(
                    request.method.decode(), path, headers, body, time.monotonic()
                )
                with self.lock:
                    self.requests.append(record)
                reply = await self._route(record)
                with self.lock:
                    record.status = reply.status if isinstance(reply, Reply) else None
                    self.lock.notify_all()
                if isinstance(reply, Hang):
                    assert self._stop is not None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), reply.seconds)
                    writer.transport.abort()
                    return
                if isinstance(reply, Drop):
                    writer.transport.abort()
                    return
                out = [("Content-Length", str(len(reply.body))), *reply.headers]
                writer.write(conn.send(h11.Response(status_code=reply.status, headers=out)) or b"")
                writer.write(conn.send(h11.Data(data=reply.body)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, ssl.SSLError):
            return
        finally:
            writer.transport.abort()

    async def _route(self, request: RecordedRequest) -> Reply | Hang | Drop:
        parts = [unquote(p) for p in urlsplit(request.path).path.split("/")[1:]]
        with self.lock:
            if request.method == "GET" and parts[1:] == [
                "v2.0",
                ".well-known",
                "openid-configuration",
            ]:
                return self.identity.openid_configuration(parts[0])
            if request.method == "POST" and parts[1:] == ["oauth2", "v2.0", "token"]:
                if self._token_script:
                    return self._token_script.popleft()
                return self.identity.token(
                    parts[0], request.body, request.headers.get("authorization")
                )
        if (
            request.method == "POST"
            and len(parts) == 4
            and parts[:2] == ["v1.0", "users"]
            and parts[3] == "sendMail"
        ):
            return await self._send_mail(parts[2], request)
        return _graph_error(
            404,
            "ResourceNotFound",
            f"Resource not found for the segment '{parts[0] if parts else ''}'.",
        )

    async def _send_mail(self, mailbox: str, request: RecordedRequest) -> Reply | Hang | Drop:
        with self.lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)  # the service's own processing time
            with self.lock:
                return self._send_mail_locked(mailbox.lower(), request)
        finally:
            with self.lock:
                self._in_flight -= 1

    def _send_mail_locked(self, mailbox: str, request: RecordedRequest) -> Reply | Hang | Drop:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return _graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        claims = self.identity.check(authorization[7:])
        if isinstance(claims, str):
            return _graph_error(401, "InvalidAuthenticationToken", claims)
        fault = self._script.popleft() if self._script else None
        if isinstance(fault, Answer):
            return _graph_error(fault.status, fault.code, fault.message, *fault.headers)
        if isinstance(fault, Hang):
            return fault
        throttled = self._enforce_limits(mailbox, request)
        if throttled is not None:
            self.throttled += 1
            self.throttle_reasons.append(throttled.body.decode())
            return throttled
        if "Mail.Send" not in claims.get("roles", []):
            return _graph_error(403, ACCESS_DENIED.code, ACCESS_DENIED.message)
        box = self.mailboxes.get(mailbox)
        if box is None:
            return _graph_error(
                404, "ErrorInvalidUser", f"The requested user '{mailbox}' is invalid."
            )
        if not box.in_scope:
            return _graph_error(
                403,
                "ErrorAccessDenied",
                "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly "
                "AccessPolicy settings.",
            )
        if len(request.body) > self.request_limit:
            return _graph_error(413, TOO_LARGE.code, TOO_LARGE.message)
        try:
            mime = base64.b64decode(b"".join(request.body.split()), validate=True)
        except binascii.Error:
            return _graph_error(400, INVALID_BASE64.code, INVALID_BASE64.message)
        message = email.message_from_bytes(mime, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        recipients = exchange_recipients(message)
        if not recipients:
            return _graph_error(400, INVALID_RECIPIENTS.code, INVALID_RECIPIENTS.message)
        sender = _first_address(message, "from")
        if sender is not None and sender != mailbox and sender not in box.send_as:
            return _graph_error(403, SEND_AS_DENIED.code, SEND_AS_DENIED.message)
        request_id = str(uuid.uuid4())
        self.messages.append(
            SentMessage(
                mailbox,
                mime,
                request.body,
                recipients,
                sender,
                request_id,
                request.headers.get("client-request-id"),
                request.at,
            )
        )
        self._count(mailbox, request, recipients)
        if isinstance(fault, Drop):
            return fault
        return Reply(
            202,
            b"",
            (
                ("request-id", request_id),
                ("client-request-id", request.headers.get("client-request-id", "")),
            ),
        )

    def _enforce_limits(self, mailbox: str, request: RecordedRequest) -> Reply | None:
        limits = self.limits
        if limits is None:
            return None
        now = request.at
        waits: list[tuple[float, str]] = []
        if limits.concurrency is not None and self._in_flight > limits.concurrency:
            waits.append((1.0, "MailboxConcurrency"))
        if limits.requests is not None:
            window = self._window(mailbox, "requests", limits.requests)
            waits.append((window.wait(now, 1), "RequestRate"))
            window.add(now, 1)  # throttled requests count too
        if limits.messages is not None:
            waits.append(
                (self._window(mailbox, "messages", limits.messages).wait(now, 1), "MessageRate")
            )
        if limits.upload_bytes is not None:
            window = self._window(mailbox, "upload", limits.upload_bytes)
            waits.append((window.wait(now, len(request.body)), "UploadRate"))
        seconds, limit = max(waits, default=(0.0, ""))
        if seconds <= 0:
            return None
        retry_after = str(max(1, math.ceil(seconds))) if math.isfinite(seconds) else "3600"
        return _graph_error(
            429,
            "ApplicationThrottled",
            f"Application is over its {limit} limit.",
            ("Retry-After", retry_after),
        )

    def _count(self, mailbox: str, request: RecordedRequest, recipients: tuple[str, ...]) -> None:
        limits = self.limits
        if limits is None:
            return
        if limits.messages is not None:
            self._window(mailbox, "messages", limits.messages).add(request.at, 1)
        if limits.upload_bytes is not None:
            self._window(mailbox, "upload", limits.upload_bytes).add(request.at, len(request.body))
        if limits.recipients is not None:
            self._window(mailbox, "recipients", limits.recipients).add(request.at, len(recipients))

    def _window(self, mailbox: str, kind: str, limit: tuple[int, float]) -> _Window:
        return self._windows.setdefault((mailbox, kind), _Window(limit))


def exchange_recipients(message: EmailMessage) -> tuple[str, ...]:
    """Recipients as Exchange takes them from a MIME submission: every address in every
    To, Cc and Bcc field (groups flattened), lower-cased, first occurrence kept."""
    seen: dict[str, None] = {}
    for name in ("to", "cc", "bcc"):
        for value in message.get_all(name, []):
            if isinstance(value, AddressHeader):
                for address in value.addresses:
                    if address.addr_spec and "@" in address.addr_spec:
                        seen.setdefault(address.addr_spec.lower(), None)
    return tuple(seen)


def _first_address(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    if isinstance(value, AddressHeader):
        for address in value.addresses:
            if address.addr_spec:
                return str(address.addr_spec).lower()
    return None


def _graph_error(status: int, code: str | None, message: str, *headers: tuple[str, str]) -> Reply:
    request_id = str(uuid.uuid4())
    return Reply.json(
        status,
        {
            "error": {
                "code": code or "UnknownError",
                "message": message,
                "innerError": {"date": "2026-01-01T00:00:00", "request-id": request_id},
            }
        },
        ("request-id", request_id),
        *headers,
    )


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes] | None:
    """The next request and its body, or None when the client closed the connection."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
