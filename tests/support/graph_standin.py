"""A local HTTPS stand-in for the Microsoft identity platform and Graph's `sendMail`.

One server on 127.0.0.1 (port 0) with a certificate from a throw-away `trustme` CA whose PEM is
written to a file: mxrelay trusts it through `SSL_CERT_FILE`, exactly as it would trust a corporate
proxy's CA. It runs its own event loop in a thread, so synchronous code (MSAL, the graph-test
command, a benchmark) and async tests can all talk to it.

The identity half (discovery, token endpoint, client-assertion checks) is in
`graph_standin_tokens.py`, the Graph half (`sendMail`: token, mailbox and scope checks, base64 and
MIME, recipients from To/Cc/Bcc as Exchange takes them, 202 with a `request-id`) in
`graph_standin_mail.py`. This module serves both over HTTPS (h11 on asyncio streams, so that a test
can make the server hang or drop a connection mid-request) and is what tests configure and read.

Tests script faults in the order requests arrive (`script(...)`): any status with an error code and
headers (429 with Retry-After in seconds or as an HTTP date, 503, 401, 403, 400, 413), a hang past
the client's timeout, or accepting the message and dropping the connection before answering. With
`limits`, it enforces Microsoft's per-mailbox limits itself (sliding windows by arrival time) and
answers 429 when a client exceeds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
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

from tests.support.graph_standin_mail import (
    ACCESS_DENIED,
    EXPIRED_TOKEN,
    INVALID_BASE64,
    INVALID_RECIPIENTS,
    MAILBOX,
    SEND_AS_DENIED,
    TOO_LARGE,
    Answer,
    Drop,
    Fault,
    GraphMail,
    Hang,
    Mailbox,
    MailboxLimits,
    RecordedRequest,
    SentMessage,
    graph_error,
    throttle,
    unavailable,
)
from tests.support.graph_standin_tokens import AppRegistration, IdentityPlatform, Reply

__all__ = [
    "ACCESS_DENIED",
    "CLIENT_ID",
    "EXPIRED_TOKEN",
    "INVALID_BASE64",
    "INVALID_RECIPIENTS",
    "MAILBOX",
    "SECRET",
    "SEND_AS_DENIED",
    "TENANT",
    "TENANT_DOMAIN",
    "TOO_LARGE",
    "Answer",
    "Drop",
    "GraphStandIn",
    "Hang",
    "MailboxLimits",
    "SentMessage",
    "throttle",
    "unavailable",
]

TENANT = "0c8a1f52-7d3e-4b6a-9f21-5e4d3c2b1a09"
TENANT_DOMAIN = "contoso.example"
CLIENT_ID = "5f1d9c7e-2a4b-4e8f-8c3d-7b6a5e4f3d2c"
SECRET = "s3cr3t~Value.With-Chars_0123456789"


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
        self.mail = GraphMail(limits=limits, request_limit=request_limit)
        self.ca = trustme.CA()
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "standin-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.port = 0
        self.identity: IdentityPlatform
        self.lock = threading.Condition()
        self._token_script: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
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
            self.mail.mailboxes[address.lower()] = Mailbox(
                address.lower(), {a.lower() for a in send_as}, in_scope
            )

    def identity_at(self, host: str) -> str:
        """Name the identity platform's URLs (discovery, token endpoint) with `host` instead of
        127.0.0.1, `localhost` say, so that to a client the identity platform and Graph are two
        hosts (one proxied, one not); returns the authority to configure."""
        url = f"https://{host}:{self.port}"
        with self.lock:
            self.identity.base_url = url
        return url

    def script(self, *faults: Fault) -> None:
        """Answers for the next sendMail requests, in order; then normal service resumes."""
        with self.lock:
            self.mail.script.extend(faults)

    def script_token(self, *replies: Reply) -> None:
        with self.lock:
            self._token_script.extend(replies)

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired as far as Graph is concerned."""
        with self.lock:
            self.identity.revoked_before = time.time()

    def sent(self) -> list[SentMessage]:
        with self.lock:
            return list(self.mail.messages)

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
        self.wait_for(lambda: len(self.mail.messages) >= count, timeout)
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
                request, body, arrived = received
                path = request.target.decode("ascii", "replace")
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
                record = RecordedRequest(request.method.decode(), path, headers, body, arrived)
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
        return graph_error(
            404,
            "ResourceNotFound",
            f"Resource not found for the segment '{parts[0] if parts else ''}'.",
        )

    async def _send_mail(self, mailbox: str, request: RecordedRequest) -> Reply | Hang | Drop:
        with self.lock:
            self.mail.in_flight += 1
            self.mail.max_in_flight = max(self.mail.max_in_flight, self.mail.in_flight)
        try:
            with self.lock:
                authorization = request.headers.get("authorization", "")
                claims = (
                    self.identity.check(authorization[7:])
                    if authorization.startswith("Bearer ")
                    else "Access token is empty."
                )
                reply = self.mail.send_mail(mailbox.lower(), request, claims)
            # The answer leaves `latency` after the request arrived, the stand-in's own work
            # included, as the service's processing time includes Graph's.
            remaining = self.latency - (time.monotonic() - request.at)
            if remaining > 0:
                await asyncio.sleep(remaining)
            return reply
        finally:
            with self.lock:
                self.mail.in_flight -= 1

    # --- what tests read -----------------------------------------------------------------------

    @property
    def throttled(self) -> int:
        """How many 429s the stand-in's own limits answered."""
        with self.lock:
            return self.mail.throttled

    @property
    def max_in_flight(self) -> int:
        with self.lock:
            return self.mail.max_in_flight


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes, float] | None:
    """The next request, its body and when its first bytes came (its arrival: the answer's
    latency counts from there), or None when the client closed the connection."""
    request: h11.Request | None = None
    body = bytearray()
    arrived: float | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            arrived = time.monotonic() if arrived is None else arrived
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body), time.monotonic() if arrived is None else arrived
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
