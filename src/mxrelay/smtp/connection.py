"""One SMTP connection: input buffering, the command loop, MAIL/RCPT/DATA, STARTTLS and AUTH.

An `asyncio.Protocol` that runs its session in one coroutine: `data_received` only appends to a
buffer and wakes the coroutine, which parses complete lines, asks the `SessionPolicy` for each
decision and queues replies; replies are written in one batch whenever the coroutine has to wait for
input, so a pipelining client gets one packet per batch of commands. The listener lives in
`server.py`; the limits and the policy protocol in `hooks.py`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import replace
from typing import cast

from mxrelay import log
from mxrelay.model import Peer, Reply, TlsInfo
from mxrelay.smtp import replies
from mxrelay.smtp.auth import read_credentials
from mxrelay.smtp.commands import parse_mail_params, split_path_and_params, valid_reverse_path
from mxrelay.smtp.data import DataProblem, DataReader, DataResult, DataState
from mxrelay.smtp.hooks import ConnectionHost
from mxrelay.smtp.memory import DATA_BUDGET_STEP, DATA_FREE_BYTES
from mxrelay.smtp.session import Envelope, Session

logger = logging.getLogger("mxrelay.smtp")


INPUT_BUFFER_LIMIT = 256 * 1024
"""Unhandled input a connection buffers before it stops reading from its socket."""


class ShutdownRequested(Exception):
    """Raised into a connection waiting for its next command when the server stops."""


class ConnectionClosed(Exception):
    pass


class SmtpConnection(asyncio.Protocol):
    """One client connection: buffers input and runs the command loop in its own task."""

    def __init__(self, server: ConnectionHost) -> None:
        self.server = server
        self.peer = Peer("", 0)
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self._held = 0  # bytes drawn on the server's data memory budget by this transaction
        self._shutdown_requested = False
        self.session: Session | None = None
        self.envelope: Envelope | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        self.peer = Peer(str(peer[0]), int(peer[1]))
        self._task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        # Stop reading once 256 KiB wait to be handled, in DATA too: the coroutine takes it all
        # when it next runs and resumes reading, so a connection's input stays bounded however
        # long the loop is busy elsewhere (message data is counted in the data budget instead).
        if len(self._buffer) > INPUT_BUFFER_LIMIT and not self._paused:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionClosed())

    # -- control from the server ----------------------------------------------------------------

    def request_shutdown(self) -> None:
        self._shutdown_requested = True
        waiter = self._waiter
        if self.envelope is None and waiter is not None and not waiter.done():
            waiter.set_exception(ShutdownRequested())

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    # -- I/O helpers ----------------------------------------------------------------------------

    def _send(self, reply: Reply) -> None:
        self._out.append(reply.render())

    def _send_raw(self, data: bytes) -> None:
        self._out.append(data)

    def _flush(self) -> None:
        if self._out and self._transport is not None and not self._closed:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    async def _wait(self, idle_limit: float, deadline: float) -> None:
        """Flush pending replies, then wait for more input: at most `idle_limit` seconds, and
        never past `deadline` (loop time), so a client that trickles bytes still times out."""
        self._flush()
        if self._closed:
            raise ConnectionClosed()
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        loop = asyncio.get_running_loop()
        limit = min(idle_limit, deadline - loop.time())
        if limit <= 0:
            raise TimeoutError()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        handle = loop.call_later(limit, _expire, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None

    async def _read_line(self) -> bytes | None:
        """The next command line without its CRLF; None for a line that was too long."""
        limits = self.server.limits
        limit = limits.line_length
        skipping = False
        deadline = 0.0  # set when the line is first awaited (a buffered line needs none)
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                if skipping or len(line) > limit:
                    return None
                return line
            if len(self._buffer) > limit:
                skipping = True
                self._buffer.clear()
            deadline = deadline or asyncio.get_running_loop().time() + limits.command_deadline
            await self._wait(limits.command_timeout, deadline)

    # -- the session ----------------------------------------------------------------------------

    async def _run(self) -> None:
        server = self.server
        metrics = server.metrics
        session = Session(peer=self.peer)
        self.session = session
        end = "disconnect"
        refusal = server.admit(self)
        if refusal is not None:
            metrics.smtp_connections.labels(
                result="shutdown" if server.shutting_down else "limit"
            ).inc()
            self._send(refusal)
            self._close()
            return
        metrics.smtp_sessions_active.inc()
        try:
            greeting = await server.policy.on_connect(session)
            if greeting is not None and not greeting.is_positive:
                metrics.smtp_connections.labels(result="denied").inc()
                self._send(greeting)
                end = "denied"
                return
            metrics.smtp_connections.labels(result="accepted").inc()
            self._send(greeting or replies.greeting(server.hostname))
            end = await self._command_loop(session)
        except ConnectionClosed:
            end = "disconnect"
        except ShutdownRequested:
            self._send(replies.SERVICE_SHUTTING_DOWN)
            end = "shutdown"
        except TimeoutError:
            self._send(replies.TIMEOUT)
            end = "timeout"
        except asyncio.CancelledError:
            end = "shutdown"
            raise
        except Exception:
            logger.exception(
                "unexpected error in SMTP session",
                extra={log.FIELDS_ATTR: {"client": str(self.peer)}},
            )
            self._send(replies.LOCAL_ERROR.with_code(421))
            end = "error"
        finally:
            if end != "denied":
                metrics.smtp_sessions_active.dec()
                metrics.smtp_sessions_ended.labels(end=end).inc()
            await self._end_transaction(None, 0)
            self._close()

    def _close(self) -> None:
        self._flush()
        if self._transport is not None and not self._closed:
            self._transport.close()
        self._closed = True
        self.server.release(self)

    async def _command_loop(self, session: Session) -> str:
        server = self.server
        while True:
            line = await self._read_line()
            reply: Reply | None
            if self._shutdown_requested and self.envelope is None:
                self._send(replies.SERVICE_SHUTTING_DOWN)
                return "shutdown"
            if line is None:
                server.metrics.smtp_protocol_errors.labels(kind="line_too_long").inc()
                reply = replies.LINE_TOO_LONG
            elif not line.endswith(b"\r\n"):
                server.metrics.smtp_protocol_errors.labels(kind="bare_lf").inc()
                reply = replies.BARE_LF_IN_COMMAND
            else:
                verb, _, arg = line[:-2].partition(b" ")
                reply_or_end = await self._dispatch(session, verb.upper(), arg)
                if isinstance(reply_or_end, str):
                    return reply_or_end
                reply = reply_or_end
            if reply is None:
                continue
            self._send(reply)
            if reply.code in replies.PROTOCOL_ERROR_CODES:
                session.errors += 1
            limits = server.limits
            if session.errors >= limits.errors:
                self._send(replies.TOO_MANY_ERRORS)
                return "error_limit"
            if session.errors > limits.soft_errors and limits.error_sleep > 0:
                await asyncio.sleep(limits.error_sleep)  # the reply waits (Postfix's error sleep)

    async def _dispatch(self, session: Session, verb: bytes, arg: bytes) -> Reply | str | None:
        try:
            text = arg.decode("utf-8").strip()
        except UnicodeDecodeError:
            self.server.metrics.smtp_protocol_errors.labels(kind="syntax").inc()
            return replies.COMMAND_UNRECOGNIZED
        if verb == b"RCPT":
            return await self._rcpt(session, text)
        if verb == b"MAIL":
            return await self._mail(session, text)
        if verb == b"DATA":
            return await self._data(session, text)
        if verb in (b"EHLO", b"HELO"):
            return await self._helo(session, verb == b"EHLO", text)
        if verb in _JUNK_VERBS:
            session.junk_commands += 1
            if session.junk_commands > self.server.limits.junk_commands:
                session.errors += 1  # Postfix's smtpd_junk_command_limit
        if verb == b"RSET":
            if text:
                return replies.NO_ARGUMENTS
            await self._end_transaction(None, 0)
            return replies.OK
        if verb == b"NOOP":
            return replies.OK
        if verb == b"QUIT":
            self._send(replies.BYE)
            return "quit"
        if verb == b"STARTTLS":
            return await self._starttls(session, text)
        if verb == b"AUTH":
            return await self._auth(session, text)
        if verb == b"VRFY":
            return replies.CANNOT_VRFY if text else replies.VRFY_SYNTAX
        if verb == b"HELP":
            return replies.HELP
        if verb in (b"EXPN", b"BDAT", b"TURN", b"ETRN"):
            return replies.COMMAND_NOT_IMPLEMENTED
        self.server.metrics.smtp_protocol_errors.labels(kind="syntax").inc()
        return replies.COMMAND_UNRECOGNIZED

    # -- commands -------------------------------------------------------------------------------

    async def _helo(self, session: Session, esmtp: bool, name: str) -> Reply | None:
        if not name or " " in name:
            return replies.EHLO_SYNTAX if esmtp else replies.HELO_SYNTAX
        await self._end_transaction(None, 0)
        session.helo = name
        session.esmtp = esmtp
        server = self.server
        if not esmtp:
            return replies.helo(server.hostname)
        lines = [
            server.hostname,
            "PIPELINING",
            f"SIZE {server.limits.max_message_size}",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
        ]
        if server.tls_context is not None and session.tls is None:
            lines.append("STARTTLS")
        if self._auth_offered(session):
            lines.append("AUTH PLAIN LOGIN")
        self._send_raw(
            "".join(f"250-{line}\r\n" for line in lines[:-1]).encode()
            + f"250 {lines[-1]}\r\n".encode()
        )
        return None

    def _auth_offered(self, session: Session) -> bool:
        server = self.server
        return server.auth_enabled and (session.tls is not None or server.auth_allow_plaintext)

    async def _mail(self, session: Session, text: str) -> Reply:
        if not session.helo:
            return replies.NEED_HELO
        if self.envelope is not None:
            return replies.NESTED_MAIL
        if text[:5].upper() != "FROM:":
            return replies.MAIL_SYNTAX
        split = split_path_and_params(text[5:])
        if split is None:
            return replies.MAIL_SYNTAX
        path, raw_params = split
        parsed = parse_mail_params(raw_params, esmtp=session.esmtp)
        if isinstance(parsed, Reply):
            return parsed
        params, smtputf8, body_8bit, size = parsed
        if not valid_reverse_path(path):
            return replies.BAD_SENDER_SYNTAX
        if not smtputf8 and not path.isascii():
            return replies.SMTPUTF8_REQUIRED_SENDER
        if size is not None and size > self.server.limits.max_message_size:
            return replies.SIZE_EXCEEDS_LIMIT
        if size is not None and size > max(DATA_FREE_BYTES, self.server.data_budget.available()):
            return replies.INSUFFICIENT_STORAGE  # RFC 1870 6.1: it would not fit just now
        mailbox = path[1:-1]
        if mailbox.startswith("@") and ":" in mailbox:
            mailbox = mailbox.split(":", 1)[1]  # a source route is accepted and ignored
        envelope = Envelope(
            mail_from=mailbox,
            params=params,
            started=self.server.clock(),
            smtputf8=smtputf8,
            body_8bitmime=body_8bit,
        )
        reply = await self.server.policy.on_mail(session, envelope)
        if reply.is_positive:
            self.envelope = envelope
        else:
            _count_refusal(session, reply)
        return reply

    async def _rcpt(self, session: Session, text: str) -> Reply:
        envelope = self.envelope
        if envelope is None:
            return replies.NEED_MAIL
        if text[:3].upper() != "TO:":
            return replies.RCPT_SYNTAX
        split = split_path_and_params(text[3:])
        if split is None:
            return replies.RCPT_SYNTAX
        path, raw_params = split
        if raw_params:
            return replies.unsupported_parameter(raw_params.split()[0].split("=")[0].upper())
        limits = self.server.limits
        if len(envelope.accepted) >= limits.recipients:
            self.server.metrics.smtp_recipients.labels(verdict="tempfail", reason="limit").inc()
            envelope.excess_recipients += 1
            if envelope.excess_recipients > limits.recipient_overshoot:
                session.errors += 1
            return replies.TOO_MANY_RECIPIENTS
        outcome = await self.server.policy.on_rcpt(session, envelope, path, ())
        if outcome.reply.is_positive:
            envelope.accepted.append(outcome.mailbox)
        else:
            _count_refusal(session, outcome.reply)
        return outcome.reply

    async def _data(self, session: Session, text: str) -> Reply | str:
        envelope = self.envelope
        if text:
            return replies.NO_ARGUMENTS
        if envelope is None:
            return replies.NEED_MAIL
        if not envelope.accepted:
            if envelope.refused:
                await self._end_transaction(replies.NO_VALID_RECIPIENTS, 0)
                return replies.NO_VALID_RECIPIENTS
            return replies.NEED_RCPT
        self._send(replies.START_DATA)
        try:
            return await self._receive(session, envelope)
        finally:
            self.server.data_budget.give_back(self._held)
            self._held = 0

    async def _receive(self, session: Session, envelope: Envelope) -> Reply | str:
        """The data phase after 354: read the message, hand it on, answer."""
        result = await self._read_data()
        server = self.server
        if result.state is DataState.ENDED_BARE:
            server.metrics.smtp_protocol_errors.labels(kind="bare_lf").inc()
            server.metrics.smtp_messages.labels(outcome="rejected").inc()
            self._send(replies.BARE_NEWLINE_IN_DATA)
            await self._end_transaction(replies.BARE_NEWLINE_IN_DATA, result.size)
            return "bare_newline"  # the end of this message cannot be known: close
        if result.problem is DataProblem.TOO_BIG:
            server.metrics.smtp_protocol_errors.labels(kind="size").inc()
            reply = replies.MESSAGE_TOO_BIG
        elif result.problem is DataProblem.BARE_NEWLINE:
            server.metrics.smtp_protocol_errors.labels(kind="bare_lf").inc()
            reply = replies.BARE_NEWLINE_IN_DATA
        elif result.problem is DataProblem.NO_MEMORY:
            reply = replies.INSUFFICIENT_STORAGE
        else:
            try:
                reply = await server.policy.on_data(session, envelope, result.message)
            except Exception:
                logger.exception(
                    "message sink failed", extra={log.FIELDS_ATTR: {"client": str(self.peer)}}
                )
                reply = replies.LOCAL_ERROR
        outcome = (
            "accepted" if reply.is_positive else "tempfail" if reply.is_transient else "rejected"
        )
        server.metrics.smtp_messages.labels(outcome=outcome).inc()
        if reply.is_positive:
            server.metrics.smtp_message_bytes.inc(result.size)
            server.metrics.smtp_message_size.observe(result.size)
            session.errors = session.junk_commands = 0  # counted "without delivering mail"
        await self._end_transaction(reply, result.size)
        return reply

    async def _read_data(self) -> DataResult:
        limits = self.server.limits
        reader = DataReader(limits.max_message_size)
        deadline = asyncio.get_running_loop().time() + limits.data_deadline
        while True:
            if self._buffer:
                result = reader.feed(self._buffer)  # the reader keeps its own copy
                self._buffer.clear()
                if result is not None:
                    break
                if reader.buffered > DATA_FREE_BYTES and not self._hold(reader.buffered):
                    reader.discard()
            await self._wait(limits.data_timeout, deadline)
        self._buffer += result.leftover
        if result.problem is DataProblem.NONE and not self._hold(len(result.message)):
            result = replace(result, problem=DataProblem.NO_MEMORY, message=b"")
        return result

    def _hold(self, size: int) -> bool:
        """Draw on the data memory budget for `size` bytes of this message (in steps of
        DATA_BUDGET_STEP); False, holding nothing, when the budget cannot give that much."""
        if size <= DATA_FREE_BYTES or size <= self._held:
            return True
        budget = self.server.data_budget
        wanted = min(-(-size // DATA_BUDGET_STEP) * DATA_BUDGET_STEP, budget.limit)
        if budget.take(wanted - self._held):
            self._held = wanted
            return True
        budget.give_back(self._held)
        self._held = 0
        return False

    async def _end_transaction(self, outcome: Reply | None, size: int) -> None:
        """End the transaction in progress; `outcome` is the reply it ended with, if any."""
        envelope = self.envelope
        if envelope is None:
            return
        self.envelope = None
        if outcome is None or not outcome.is_positive:
            try:
                await self.server.policy.on_reset(self.session, envelope)  # type: ignore[arg-type]
            except Exception:
                logger.exception("sink abort failed")
        self.server.policy.transaction_ended(self.session, envelope, outcome, size)  # type: ignore[arg-type]

    async def _starttls(self, session: Session, text: str) -> Reply | None:
        server = self.server
        if text:
            return replies.NO_ARGUMENTS
        if server.tls_context is None:
            return replies.COMMAND_NOT_IMPLEMENTED
        if session.tls is not None:
            return replies.ALREADY_TLS
        if self.envelope is not None:
            return replies.TRANSACTION_IN_PROGRESS
        # Anything the client pipelined after STARTTLS arrived in plaintext: drop it (CVE-2011-0411).
        self._buffer.clear()
        self._send(replies.READY_FOR_TLS)
        self._flush()
        loop = asyncio.get_running_loop()
        assert self._transport is not None
        try:
            new_transport = await loop.start_tls(
                self._transport,
                self,
                server.tls_context,
                server_side=True,
                ssl_handshake_timeout=server.limits.command_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            log.event(
                logger, "tls handshake failed", logging.INFO, client=str(self.peer), error=str(exc)
            )
            raise ConnectionClosed() from None
        if new_transport is None:
            raise ConnectionClosed()
        self._transport = new_transport
        ssl_object = new_transport.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() if ssl_object is not None else None
        session.tls = TlsInfo(
            version=ssl_object.version() or "" if ssl_object is not None else "",
            cipher=cipher[0] if cipher else "",
        )
        session.helo = ""  # RFC 3207: the client must say EHLO again
        session.esmtp = False
        return None

    async def _auth(self, session: Session, text: str) -> Reply:
        server = self.server
        if not server.auth_enabled:
            return replies.AUTH_NOT_ENABLED
        if not session.helo:
            return replies.NEED_HELO
        if not self._auth_offered(session):
            return replies.AUTH_NEEDS_TLS
        if session.username is not None:
            return replies.ALREADY_AUTHENTICATED
        if self.envelope is not None:
            return replies.TRANSACTION_IN_PROGRESS
        if not server.auth_failures.allows(self.peer.host):
            session.errors += 1
            server.metrics.smtp_protocol_errors.labels(kind="auth").inc()
            server.auth_throttled_log.event(client=str(self.peer))
            return replies.AUTH_THROTTLED
        mechanism, _, initial = text.partition(" ")
        try:
            credentials = await read_credentials(mechanism, initial, self._challenge)
        except ValueError:
            server.metrics.smtp_protocol_errors.labels(kind="auth").inc()
            return replies.AUTH_BAD_BASE64
        if not isinstance(credentials, tuple):
            return credentials
        username, password = credentials
        verdict = await server.policy.authenticate(username, password)
        if verdict is None:
            return replies.AUTH_BUSY
        if verdict:
            session.username = username
            log.event(logger, "authenticated", client=str(self.peer), user=username)
            return replies.AUTH_SUCCEEDED
        server.auth_failures.failed(self.peer.host)
        server.metrics.smtp_protocol_errors.labels(kind="auth").inc()
        log.event(
            logger, "authentication failed", logging.WARNING, client=str(self.peer), user=username
        )
        return replies.AUTH_FAILED

    async def _challenge(self, prompt: str) -> str | None:
        self._send_raw(f"334 {prompt}\r\n".encode())
        line = await self._read_line()
        if line is None:
            return None
        answer = line.rstrip(b"\r\n").decode("ascii", "replace")
        return None if answer == "*" else answer


_JUNK_VERBS = frozenset({b"NOOP", b"RSET", b"VRFY", b"HELP"})
"""Commands that do nothing toward mail: past MXRELAY_SMTP_JUNK_COMMAND_LIMIT each is an error,
so a session that never delivers cannot go on for ever."""


def _count_refusal(session: Session, reply: Reply) -> None:
    """A refused sender or recipient is an error too, as Postfix counts every reject toward
    smtpd_hard_error_limit: otherwise one client can have any number of recipients looked up,
    logged and recorded. Accepted mail resets the count, so a client delivering mail with a
    few bad recipients here and there is never cut off."""
    if (
        reply.code not in replies.PROTOCOL_ERROR_CODES
    ):  # those are counted once, by the command loop
        session.errors += 1


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
