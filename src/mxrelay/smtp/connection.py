"""One SMTP session: the command loop, each verb's grammar and order, MAIL/RCPT/DATA, STARTTLS.

`SmtpConnection` runs in the coroutine its `LineChannel` (channel.py) starts: it reads each command
line, looks its verb up in `_VERBS`, asks the `SessionPolicy` (hooks.py) for every decision and
queues the reply; the channel writes replies in batches. Error limits and the error sleep are
counted here; the AUTH command's rules are `auth.py`'s, the listener and admission `server.py`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from mxrelay import log
from mxrelay.metrics import ConnectionResult, ProtocolError, ReplyClass, SessionEnd
from mxrelay.model import Peer, Reason, Reply
from mxrelay.smtp import replies
from mxrelay.smtp.channel import CLOSE_GRACE, ConnectionClosed, LineChannel
from mxrelay.smtp.commands import parse_mail_params, path_argument, valid_reverse_path
from mxrelay.smtp.data import DataProblem, DataReader, DataResult, DataState
from mxrelay.smtp.hooks import ConnectionHost
from mxrelay.smtp.memory import DATA_FREE_BYTES, DataHold
from mxrelay.smtp.session import Envelope, Session

logger = logging.getLogger("mxrelay.smtp")


class ShutdownRequested(Exception):
    """Raised into a connection waiting for its next command when the server stops."""


class SmtpConnection:
    """One client's session, from the greeting to QUIT, a limit or the end of the connection."""

    def __init__(self, host: ConnectionHost, channel: LineChannel) -> None:
        self.host = host
        self.channel = channel
        self._hold = DataHold(host.data_budget)  # what this transaction's message holds
        self._shutdown_requested = False
        self.envelope: Envelope | None = None

    @property
    def peer(self) -> Peer:
        return self.channel.peer

    # -- control from the server ----------------------------------------------------------------

    def request_shutdown(self) -> None:
        self._shutdown_requested = True
        if self.envelope is None:
            self.channel.interrupt(ShutdownRequested())

    def abort(self) -> None:
        self.channel.abort()

    # -- the session ----------------------------------------------------------------------------

    async def run(self) -> None:
        host, channel = self.host, self.channel
        metrics = host.metrics
        session = Session(peer=self.peer)
        end: SessionEnd | None = SessionEnd.DISCONNECT  # None: refused, the session never began
        refusal = host.admit(self)
        if refusal is not None:
            metrics.smtp_connections.labels(
                result=ConnectionResult.SHUTDOWN if host.shutting_down else ConnectionResult.LIMIT
            ).inc()
            channel.send(refusal)
            await self._close()
            return
        metrics.smtp_sessions_active.inc()
        try:
            greeting = await host.policy.on_connect(session)
            if greeting is not None and not greeting.is_positive:
                metrics.smtp_connections.labels(result=ConnectionResult.DENIED).inc()
                channel.send(greeting)
                end = None
                return
            metrics.smtp_connections.labels(result=ConnectionResult.ACCEPTED).inc()
            channel.send(greeting or replies.greeting(host.hostname))
            end = await self._command_loop(session)
        except ConnectionClosed:
            end = SessionEnd.DISCONNECT
        except ShutdownRequested:
            channel.send(replies.SERVICE_SHUTTING_DOWN)
            end = SessionEnd.SHUTDOWN
        except TimeoutError:
            channel.send(replies.TIMEOUT)
            end = SessionEnd.TIMEOUT
        except asyncio.CancelledError:
            end = SessionEnd.SHUTDOWN
            raise
        except Exception:
            logger.exception(
                "unexpected error in SMTP session",
                extra={log.FIELDS_ATTR: {"client": str(self.peer)}},
            )
            channel.send(replies.LOCAL_ERROR.with_code(421))
            end = SessionEnd.ERROR
        finally:
            if end is not None:
                metrics.smtp_sessions_active.dec()
                metrics.smtp_sessions_ended.labels(end=end).inc()
            await self._end_transaction(session, None, 0)
            await self._close()

    async def _close(self) -> None:
        """Close the connection, and give up its slot only once it is gone: a client that does
        not read its last replies is dropped after the grace, not left holding them uncounted."""
        try:
            await self.channel.close(min(CLOSE_GRACE, self.host.limits.command_timeout))
        finally:
            self.host.release(self)

    async def _read_line(self) -> bytes | None:
        """The next command line with its line end; None for one that was too long."""
        limits = self.host.limits
        return await self.channel.read_line(
            limits.line_length, limits.command_timeout, limits.command_deadline
        )

    async def _command_loop(self, session: Session) -> SessionEnd:
        host = self.host
        while True:
            if self._shutdown_requested and self.envelope is None:
                # Checked before each command is awaited, not only when one arrives: a session
                # busy when the server began to stop, or whose transaction has just ended, is
                # told now rather than left idle until the grace period ends and it is aborted.
                self.channel.send(replies.SERVICE_SHUTTING_DOWN)
                return SessionEnd.SHUTDOWN
            line = await self._read_line()
            reply: Reply | None
            if line is None:
                host.metrics.smtp_protocol_errors.labels(kind=ProtocolError.LINE_TOO_LONG).inc()
                reply = replies.LINE_TOO_LONG
            elif not line.endswith(b"\r\n"):
                host.metrics.smtp_protocol_errors.labels(kind=ProtocolError.BARE_LF).inc()
                reply = replies.BARE_LF_IN_COMMAND
            else:
                verb, _, arg = line[:-2].partition(b" ")
                reply_or_end = await self._dispatch(session, verb.upper(), arg)
                if isinstance(reply_or_end, SessionEnd):
                    return reply_or_end
                reply = reply_or_end
            if reply is not None:  # None: the verb wrote its own (EHLO), counted all the same
                self.channel.send(reply)
                if reply.code in replies.PROTOCOL_ERROR_CODES:
                    session.errors += 1
            limits = host.limits
            if session.errors >= limits.errors:
                self.channel.send(replies.TOO_MANY_ERRORS)
                return SessionEnd.ERROR_LIMIT
            if session.errors > limits.soft_errors and limits.error_sleep > 0:
                await asyncio.sleep(limits.error_sleep)  # the reply waits (Postfix's error sleep)

    async def _dispatch(
        self, session: Session, verb: bytes, arg: bytes
    ) -> Reply | SessionEnd | None:
        """The verb's reply (None when it wrote its own), or how the session ends."""
        try:
            text = arg.decode("utf-8").strip()
        except UnicodeDecodeError:
            self.host.metrics.smtp_protocol_errors.labels(kind=ProtocolError.SYNTAX).inc()
            return replies.COMMAND_UNRECOGNIZED
        handler = _VERBS.get(verb)
        if handler is None:
            self.host.metrics.smtp_protocol_errors.labels(kind=ProtocolError.SYNTAX).inc()
            return replies.COMMAND_UNRECOGNIZED
        if verb in _JUNK_VERBS or (verb in _HELLO_VERBS and session.helo):
            session.junk_commands += 1
            if session.junk_commands > self.host.limits.junk_commands:
                session.errors += 1  # Postfix's smtpd_junk_command_limit
        return await handler(self, session, text)

    # -- commands -------------------------------------------------------------------------------

    async def _ehlo(self, session: Session, name: str) -> Reply | None:
        return await self._hello(session, name, esmtp=True)

    async def _helo(self, session: Session, name: str) -> Reply | None:
        return await self._hello(session, name, esmtp=False)

    async def _hello(self, session: Session, name: str, *, esmtp: bool) -> Reply | None:
        if not name or " " in name:
            return replies.EHLO_SYNTAX if esmtp else replies.HELO_SYNTAX
        await self._end_transaction(session, None, 0)
        session.helo = name
        session.esmtp = esmtp
        host = self.host
        if not esmtp:
            return replies.helo(host.hostname)
        lines = [
            host.hostname,
            "PIPELINING",
            f"SIZE {host.limits.max_message_size}",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
        ]
        if host.tls_context is not None and session.tls is None:
            lines.append("STARTTLS")
        if host.auth.offered(session):
            lines.append("AUTH PLAIN LOGIN")
        self.channel.send_raw(
            "".join(f"250-{line}\r\n" for line in lines[:-1]).encode()
            + f"250 {lines[-1]}\r\n".encode()
        )
        return None

    async def _mail(self, session: Session, text: str) -> Reply:
        if not session.helo:
            return replies.NEED_HELO
        if self.envelope is not None:
            return replies.NESTED_MAIL
        split = path_argument(text, "FROM:")
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
        host = self.host
        if size is not None and size > host.limits.max_message_size:
            return replies.SIZE_EXCEEDS_LIMIT
        if size is not None and size > max(DATA_FREE_BYTES, host.data_budget.available()):
            return replies.INSUFFICIENT_STORAGE  # RFC 1870 6.1: it would not fit just now
        mailbox = path[1:-1]
        if mailbox.startswith("@") and ":" in mailbox:
            mailbox = mailbox.split(":", 1)[1]  # a source route is accepted and ignored
        envelope = Envelope(
            mail_from=mailbox,
            params=params,
            started=host.clock(),
            smtputf8=smtputf8,
            body_8bitmime=body_8bit,
        )
        reply = await host.policy.on_mail(session, envelope)
        if reply.is_positive:
            self.envelope = envelope
        else:
            _count_refusal(session, reply)
        return reply

    async def _rcpt(self, session: Session, text: str) -> Reply:
        envelope = self.envelope
        if envelope is None:
            return replies.NEED_MAIL
        split = path_argument(text, "TO:")
        if split is None:
            return replies.RCPT_SYNTAX
        path, raw_params = split
        if raw_params:
            return replies.unsupported_parameter(raw_params.split()[0].split("=")[0].upper())
        host = self.host
        limits = host.limits
        if len(envelope.accepted) >= limits.recipients:
            host.metrics.smtp_recipients.labels(
                verdict=ReplyClass.TEMPFAIL, reason=Reason.LIMIT
            ).inc()
            envelope.excess_recipients += 1
            if envelope.excess_recipients > limits.recipient_overshoot:
                session.errors += 1
            return replies.TOO_MANY_RECIPIENTS
        outcome = await host.policy.on_rcpt(session, envelope, path, ())
        if outcome.reply.is_positive:
            envelope.accepted.append(outcome.mailbox)
        else:
            _count_refusal(session, outcome.reply)
        return outcome.reply

    async def _data(self, session: Session, text: str) -> Reply | SessionEnd:
        envelope = self.envelope
        if text:
            return replies.NO_ARGUMENTS
        if envelope is None:
            return replies.NEED_MAIL
        if not envelope.accepted:
            if envelope.refused:
                await self._end_transaction(session, replies.NO_VALID_RECIPIENTS, 0)
                return replies.NO_VALID_RECIPIENTS
            return replies.NEED_RCPT
        self.channel.send(replies.START_DATA)
        try:
            return await self._receive(session, envelope)
        finally:
            self._hold.release()

    async def _receive(self, session: Session, envelope: Envelope) -> Reply | SessionEnd:
        """The data phase after 354: read the message, hand it on, answer."""
        result = await self._read_data()
        host = self.host
        metrics = host.metrics
        if result.state is DataState.ENDED_BARE:
            metrics.smtp_protocol_errors.labels(kind=ProtocolError.BARE_LF).inc()
            metrics.smtp_messages.labels(outcome=ReplyClass.REJECTED).inc()
            self.channel.send(replies.BARE_NEWLINE_IN_DATA)
            await self._end_transaction(session, replies.BARE_NEWLINE_IN_DATA, result.size)
            return SessionEnd.BARE_NEWLINE  # the end of this message cannot be known: close
        if result.problem is DataProblem.TOO_BIG:
            metrics.smtp_protocol_errors.labels(kind=ProtocolError.SIZE).inc()
            reply = replies.MESSAGE_TOO_BIG
        elif result.problem is DataProblem.BARE_NEWLINE:
            metrics.smtp_protocol_errors.labels(kind=ProtocolError.BARE_LF).inc()
            reply = replies.BARE_NEWLINE_IN_DATA
        elif result.problem is DataProblem.NO_MEMORY:
            reply = replies.INSUFFICIENT_STORAGE
        else:
            try:
                reply = await host.policy.on_data(session, envelope, result.message)
            except Exception:
                logger.exception(
                    "message sink failed", extra={log.FIELDS_ATTR: {"client": str(self.peer)}}
                )
                reply = replies.LOCAL_ERROR
        metrics.smtp_messages.labels(outcome=ReplyClass.of(reply)).inc()
        if reply.is_positive:
            metrics.smtp_message_bytes.inc(result.size)
            metrics.smtp_message_size.observe(result.size)
            session.errors = session.junk_commands = 0  # counted "without delivering mail"
        await self._end_transaction(session, reply, result.size)
        return reply

    async def _read_data(self) -> DataResult:
        limits = self.host.limits
        channel = self.channel
        buffer = channel.buffer
        reader = DataReader(limits.max_message_size)
        deadline = asyncio.get_running_loop().time() + limits.data_deadline
        while True:
            if buffer:
                result = reader.feed(buffer)  # the reader keeps its own copy
                buffer.clear()
                if result is not None:
                    break
                if reader.buffered > DATA_FREE_BYTES and not self._hold.take(reader.buffered):
                    reader.discard()
            await channel.wait(limits.data_timeout, deadline)
        buffer += result.leftover
        if result.problem is DataProblem.NONE and not self._hold.take(len(result.message)):
            result = replace(result, problem=DataProblem.NO_MEMORY, message=b"")
        return result

    async def _end_transaction(self, session: Session, outcome: Reply | None, size: int) -> None:
        """End the transaction in progress; `outcome` is the reply it ended with, if any."""
        envelope = self.envelope
        if envelope is None:
            return
        self.envelope = None
        policy = self.host.policy
        if outcome is None or not outcome.is_positive:
            try:
                await policy.on_reset(session, envelope)
            except Exception:
                logger.exception("sink abort failed")
        policy.transaction_ended(session, envelope, outcome, size)

    async def _rset(self, session: Session, text: str) -> Reply:
        if text:
            return replies.NO_ARGUMENTS
        await self._end_transaction(session, None, 0)
        return replies.OK

    async def _quit(self, session: Session, text: str) -> SessionEnd:
        self.channel.send(replies.BYE)
        return SessionEnd.QUIT

    async def _starttls(self, session: Session, text: str) -> Reply | None:
        host = self.host
        if text:
            return replies.NO_ARGUMENTS
        if host.tls_context is None:
            return replies.COMMAND_NOT_IMPLEMENTED
        if session.tls is not None:
            return replies.ALREADY_TLS
        if self.envelope is not None:
            return replies.TRANSACTION_IN_PROGRESS
        self.channel.send(replies.READY_FOR_TLS)
        session.tls = await self.channel.start_tls(host.tls_context, host.limits.command_timeout)
        # RFC 3207 4.2: forget what the plaintext session established (a man in the middle may
        # have said it): the client must say EHLO again, and authenticate again.
        session.helo = ""
        session.esmtp = False
        session.username = None
        return None

    async def _auth(self, session: Session, text: str) -> Reply:
        return await self.host.auth.command(
            session, text, self._challenge, in_transaction=self.envelope is not None
        )

    async def _challenge(self, prompt: str) -> str | None:
        self.channel.send_raw(f"334 {prompt}\r\n".encode())
        line = await self._read_line()
        if line is None:
            return None
        answer = line.rstrip(b"\r\n").decode("ascii", "replace")
        return None if answer == "*" else answer


Verb = Callable[[SmtpConnection, Session, str], Awaitable[Reply | SessionEnd | None]]
"""A command: (connection, session, argument text) → its reply, None if it wrote its own, or how
the session ends."""


def _answer(reply: Reply) -> Verb:
    """A command whose reply is always `reply`."""

    async def verb(connection: SmtpConnection, session: Session, text: str) -> Reply:
        return reply

    return verb


async def _vrfy(connection: SmtpConnection, session: Session, text: str) -> Reply:
    return replies.CANNOT_VRFY if text else replies.VRFY_SYNTAX


_VERBS: dict[bytes, Verb] = {
    b"RCPT": SmtpConnection._rcpt,
    b"MAIL": SmtpConnection._mail,
    b"DATA": SmtpConnection._data,
    b"EHLO": SmtpConnection._ehlo,
    b"HELO": SmtpConnection._helo,
    b"RSET": SmtpConnection._rset,
    b"NOOP": _answer(replies.OK),
    b"QUIT": SmtpConnection._quit,
    b"STARTTLS": SmtpConnection._starttls,
    b"AUTH": SmtpConnection._auth,
    b"VRFY": _vrfy,
    b"HELP": _answer(replies.HELP),
    b"EXPN": _answer(replies.COMMAND_NOT_IMPLEMENTED),
    b"BDAT": _answer(replies.COMMAND_NOT_IMPLEMENTED),
    b"TURN": _answer(replies.COMMAND_NOT_IMPLEMENTED),
    b"ETRN": _answer(replies.COMMAND_NOT_IMPLEMENTED),
}
"""Every verb the engine knows (upper case); any other is answered 500 and counted as an error."""

_JUNK_VERBS = frozenset({b"NOOP", b"RSET", b"VRFY", b"HELP"})
"""Commands that do nothing toward mail: past MXRELAY_SMTP_JUNK_COMMAND_LIMIT each is an error,
so a session that never delivers cannot go on for ever."""

_HELLO_VERBS = frozenset({b"HELO", b"EHLO"})
"""Junk too when the session has already said hello (since STARTTLS): a repeated EHLO ends the
transaction as RSET does, so MAIL, RCPT, EHLO in a loop would otherwise have recipients looked up
and logged without end, never an error."""


def _count_refusal(session: Session, reply: Reply) -> None:
    """A refused sender or recipient is an error too, as Postfix counts every reject toward
    smtpd_hard_error_limit: otherwise one client can have any number of recipients looked up,
    logged and recorded. Accepted mail resets the count, so a client delivering mail with a
    few bad recipients here and there is never cut off."""
    if reply.code not in replies.PROTOCOL_ERROR_CODES:  # those are counted once, by the loop
        session.errors += 1
