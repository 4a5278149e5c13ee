"""The SMTP smarthost transport (`MXRELAY_DELIVERY=smtp`): queued messages to `MXRELAY_UPSTREAM`.

One attempt is one SMTP transaction with aiosmtplib on a pooled connection (`passthrough.UpstreamPool`
opens them with the configured TLS, credentials and timeouts, and keeps idle ones for reuse). The
transport reports per recipient, as Postfix's smtp client does for its queue manager:

- a recipient refused at RCPT with 4xx is deferred, with 5xx failed; the others go on;
- the reply to the end of DATA settles every recipient that RCPT accepted: 2xx delivered (the
  "queued as" id is kept as the remote id), 4xx deferred, 5xx failed;
- MAIL refused: every recipient takes that reply's class;
- a connection that cannot be opened, breaks or times out raises `UpstreamUnavailable` (the whole
  attempt is deferred). A pooled connection the server closed while idle is replaced once, before
  anything was sent.
"""

from __future__ import annotations

import asyncio
import re

import aiosmtplib

from mxrelay.delivery.errors import PermanentFailure, UpstreamUnavailable
from mxrelay.delivery.passthrough import UpstreamError, UpstreamPool
from mxrelay.delivery.transport import (
    DeliveryJob,
    DeliveryOutcome,
    RecipientOutcome,
    RecipientStatus,
)

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s+")
_QUEUED_AS = re.compile(r"queued as\s+<?([A-Za-z0-9._@:+/=-]+)>?", re.IGNORECASE)
_LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError, TimeoutError)


def remote_id(text: str) -> str | None:
    """The smarthost's queue id from its final reply ("250 2.0.0 Ok: queued as 4XyZ12")."""
    match = _QUEUED_AS.search(text)
    return match.group(1) if match else None


def _split(code: int, message: str) -> tuple[str, str]:
    """(enhanced status, text) of a reply."""
    text = " ".join(message.split())
    match = _ENHANCED.match(text)
    if match and match.group(1)[0] == str(code)[0]:
        return match.group(1), text[match.end() :]
    return "", text


def _status(code: int) -> RecipientStatus:
    if 200 <= code < 300:
        return RecipientStatus.DELIVERED
    return RecipientStatus.FAILED if code >= 500 else RecipientStatus.DEFERRED


def _outcome(recipient: str, code: int, message: str) -> RecipientOutcome:
    enhanced, text = _split(code, message)
    return RecipientOutcome(recipient, _status(code), code, enhanced, text)


class _Stale(Exception):
    """The pooled connection was gone before anything was sent: open another one."""


class SmarthostTransport:
    """Delivers jobs to one smarthost; the `Transport` for `MXRELAY_DELIVERY=smtp`."""

    name = "smtp"

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool

    async def probe(self) -> None:
        client = await self._acquire()
        self.pool.release(client, reusable=True)

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def _acquire(self) -> aiosmtplib.SMTP:
        try:
            return await self.pool.acquire()
        except UpstreamError as exc:
            raise UpstreamUnavailable(f"smarthost unreachable: {exc}") from None

    async def deliver(self, job: DeliveryJob) -> DeliveryOutcome:
        for _ in range(2):
            client = await self._acquire()
            try:
                return await self._transaction(client, job)
            except _Stale:
                continue  # `_transaction` discarded the dead connection; nothing was sent
        raise UpstreamUnavailable("smarthost closed the connection before MAIL")

    def _mail_options(self, client: aiosmtplib.SMTP, job: DeliveryJob) -> list[str]:
        options = []
        if client.supports_extension("size"):
            options.append(f"SIZE={len(job.data)}")
        if client.supports_extension("8bitmime") and not job.data.isascii():
            options.append("BODY=8BITMIME")
        if job.smtputf8:
            if not client.supports_extension("smtputf8"):
                raise PermanentFailure(
                    "the smarthost does not support SMTPUTF8, which this message needs", code=553
                )
            options.append("SMTPUTF8")
        return options

    async def _transaction(self, client: aiosmtplib.SMTP, job: DeliveryJob) -> DeliveryOutcome:
        # MAIL and RCPT are sent with execute_command: the envelope addresses were checked when
        # they were accepted, and aiosmtplib's own mail()/rcpt() would re-parse each one with
        # email.utils (a large share of the CPU time of a delivery).
        reusable = False
        stage = "MAIL"
        encoding = "utf-8" if job.smtputf8 else "ascii"
        try:
            try:
                if client.is_ehlo_or_helo_needed:
                    await client.ehlo()
                options = [o.encode("ascii") for o in self._mail_options(client, job)]
                sender = b"FROM:<" + job.mail_from.encode(encoding) + b">"
                reply = await client.execute_command(b"MAIL", sender, *options)
            except aiosmtplib.SMTPServerDisconnected:
                raise _Stale() from None
            if reply.code != 250:
                reusable = await _reset(client)
                refused = _outcome("", reply.code, reply.message)
                return DeliveryOutcome(
                    tuple(
                        RecipientOutcome(
                            r, refused.status, reply.code, refused.enhanced, refused.text
                        )
                        for r in job.recipients
                    ),
                    detail=f"MAIL refused: {reply.code} {refused.text}",
                )
            stage = "RCPT"
            results: dict[str, RecipientOutcome] = {}
            accepted: list[str] = []
            for recipient in job.recipients:
                reply = await client.execute_command(
                    b"RCPT", b"TO:<" + recipient.encode(encoding) + b">"
                )
                if reply.code in (250, 251):
                    accepted.append(recipient)
                else:
                    results[recipient] = _outcome(recipient, reply.code, reply.message)
            if not accepted:
                reusable = await _reset(client)
                return DeliveryOutcome(tuple(results[r] for r in job.recipients))
            stage = "DATA"
            try:
                response = await client.data(job.data)
                code, message = response.code, response.message
            except aiosmtplib.SMTPDataError as exc:
                code, message = exc.code, exc.message
            reusable = True
            for recipient in accepted:
                results[recipient] = _outcome(recipient, code, message)
            _, text = _split(code, message)
            return DeliveryOutcome(
                tuple(results[r] for r in job.recipients),
                remote_id=remote_id(message) if code < 300 else None,
                detail=f"{code} {text}",
            )
        except _LOST as exc:
            raise UpstreamUnavailable(
                f"smarthost connection lost during {stage}: {type(exc).__name__}"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            # An unexpected reply where none of the above applies (EHLO, RSET): defer all.
            raise UpstreamUnavailable(f"smarthost replied {exc.code} during {stage}") from None
        except asyncio.CancelledError:
            # Cut off by the shutdown deadline in the middle of a command: the session's state is
            # unknown, so the connection is dropped rather than sent a QUIT (which could land in
            # the DATA, and waits for an answer the deadline has no time left for).
            client.close()
            raise
        finally:
            self.pool.release(client, reusable=reusable)


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET after a refused transaction; True if the connection can be reused."""
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        return False
    return True
