"""The message log on SQLite and PostgreSQL: what is kept per message, and searching it."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from sqlalchemy import select

from mxrelay.model import Peer, Reason, RefusedRecipient, Reply, SessionInfo, TlsInfo
from mxrelay.store import listing, message_log, schema
from mxrelay.store.backend import Database
from mxrelay.store.search import SearchQuery, count_messages, parse_search, search_messages
from tests.store.helpers import T0, accept, message_bytes, record, transaction

RAW = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.net>\r\n"
    b"To: Bob <bob@example.org>, carol@example.org\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from the invoicing system\r\n"
    b"Message-ID: <inv-42@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour invoice 4711 is attached.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
    b"\r\nJVBERi0=\r\n--b--\r\n"
)


async def test_everything_about_a_message_is_kept(db: Database) -> None:
    txn = transaction(recipients=("bob@example.org", "carol@example.org"), data=RAW)
    session = SessionInfo(
        Peer("192.0.2.7", 41000),
        helo="app.example.net",
        esmtp=True,
        tls=TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
        username="invoicing",
    )
    txn = replace(txn, session=session, mail_params=(("SIZE", "700"),))
    rec = record(txn)
    await accept(db, rec)
    view = await message_log.get_message(db, rec.id)
    assert view is not None
    assert view.received_at == T0.timestamp()
    assert (view.client_address, view.helo, view.username) == (
        "192.0.2.7",
        "app.example.net",
        "invoicing",
    )
    assert view.tls_version == "TLSv1.3"
    assert view.mail_from == "alice@example.net"
    assert view.size == len(RAW)
    assert view.sha256 == hashlib.sha256(RAW).hexdigest()
    assert view.subject == "Grüße from the invoicing system"
    assert view.header_from == "jurgen@example.net"
    assert view.header_to == "bob@example.org, carol@example.org"
    assert view.message_id_header == "inv-42@example.net"
    assert [(r.address, r.state) for r in view.recipients] == [
        ("bob@example.org", "queued"),
        ("carol@example.org", "queued"),
    ]
    assert await message_log.get_raw(db, rec.id) == RAW  # byte for byte
    assert len(rec.compressed) < len(RAW) * 2
    [summary] = await search_messages(db, SearchQuery())
    assert (summary.attachments, summary.snippet) == (1, "Your invoice 4711 is attached.")
    assert summary.addresses.sender == ("Jürgen", "jurgen@example.net")
    assert summary.addresses.to == (("Bob", "bob@example.org"), ("", "carol@example.org"))


async def test_refusals_are_logged(db: Database) -> None:
    session = transaction().session
    refused = RefusedRecipient(
        "x@nonexistent.example", Reply(550, "1.2", "domain does not exist"), Reason.NXDOMAIN
    )
    await db.write(
        message_log.insert_refusals,
        [message_log.Refusal(T0.timestamp(), session, "a@example.net", refused)],
    )
    row = await db.read(lambda conn: conn.execute(select(schema.refusals)).mappings().one())
    assert (row["recipient"], row["code"], row["enhanced"], row["reason"]) == (
        "x@nonexistent.example",
        550,
        "5.1.2",
        "nxdomain",
    )


async def test_search(db: Database) -> None:
    first = record(
        transaction(data=message_bytes(subject="Quarterly report", body="numbers inside"))
    )
    second = record(
        transaction(
            mail_from="noreply@shop.example",
            recipients=("dave@example.com",),
            data=message_bytes(subject="Your order", body="tracking number"),
            received_at=T0.replace(minute=5),
        )
    )
    await accept(db, first, second)

    async def ids(query: str) -> list[str]:
        return [m.id for m in await search_messages(db, parse_search(query))]

    assert await ids("") == [second.id, first.id]  # newest first
    assert await ids("quarterly") == [first.id]
    assert await ids("tracking number") == [second.id]
    assert await ids('"tracking number"') == [second.id]
    assert await ids('"number tracking"') == []
    assert await ids("dave@example.com") == [second.id]
    assert await ids("report tracking") == []
    assert await ids('" OR 1=1 --') == []
    assert await ids("addressed:SHOP.example") == [second.id]
    assert await ids("to:bob@") == [second.id, first.id]  # the To field of both
    assert await ids("bcc:dave@") == [second.id]  # an envelope recipient no field names
    assert await ids("status:queued") == [second.id, first.id]
    assert await ids("status:delivered") == []
    assert await ids(f"before:{int(second.received_at) - 1}") == [first.id]
    assert await count_messages(db, parse_search(f"after:{int(second.received_at)}")) == 1


HOSTILE = (
    b"From: a\x00b@example.net\r\nTo: bob@example.org\r\n"
    b"Subject: =?utf-7?Q?+2D0-?= and a\x00nul\r\n"
    b"Content-Type: text/plain; charset=utf-7\r\n\r\n+2D0- lone +2D3cAQ- pair\r\n"
)


async def test_text_either_database_refuses_is_kept_with_replacement_characters(
    db: Database,
) -> None:
    """Lone surrogates and NUL bytes (subject, sender, a refused recipient, a reply) are stored as
    U+FFFD instead of failing the transaction. utf-7 is not among the charsets the summary decodes
    (mime.text), so its words stay as written; a surrogate still arrives in a reply's text."""
    rec = record(transaction(mail_from='"a\x00b"@example.net', data=HOSTILE))
    await accept(db, rec)
    view = await message_log.get_message(db, rec.id)
    assert view is not None
    assert view.subject == "+2D0- and a\ufffdnul"
    assert view.header_from == "a\ufffdb@example.net"
    assert view.mail_from == '"a\ufffdb"@example.net'
    assert await message_log.get_raw(db, rec.id) == HOSTILE  # the bytes themselves are untouched
    [summary] = await search_messages(db, parse_search("pair"))
    assert summary.snippet == "+2D0- lone +2D3cAQ- pair"
    refused = RefusedRecipient("x\x00y@example.com", Reply(550, "1.1", "no\ud800"), Reason.SYNTAX)
    refusal = message_log.Refusal(
        T0.timestamp(), transaction().session, "a\x00@example.net", refused
    )
    await db.write(message_log.insert_refusals, [refusal])
    row = await db.read(lambda conn: conn.execute(select(schema.refusals)).mappings().one())
    assert (row["recipient"], row["mail_from"], row["text"]) == (
        "x\ufffdy@example.com",
        "a\ufffd@example.net",
        "no\ufffd",
    )


async def test_address_filters_find_wildcards_literally(db: Database) -> None:
    """`addressed:a_b` is the text a_b, not LIKE's a-any-character-b."""
    plain = record(transaction(mail_from="axb@example.net", recipients=("c%d@example.org",)))
    marked = record(
        transaction(
            mail_from="a_b@example.net",
            recipients=("cxd@example.org",),
            received_at=T0.replace(minute=1),
        )
    )
    await accept(db, plain, marked)

    async def ids(query: str) -> list[str]:
        return [m.id for m in await search_messages(db, parse_search(query))]

    assert await ids("addressed:a_b") == [marked.id]
    assert await ids("addressed:%") == [plain.id]  # its envelope recipient c%d
    assert await ids("addressed:/") == []
    assert await ids("bcc:c%d") == [plain.id]
    assert await ids("bcc:c_d") == []
    assert await ids("addressed:a_b@example") == [marked.id]
    assert await ids("addressed:%@example") == []


ACCEPTED = {
    "names, an attachment, encoded words": RAW,
    "text no database stores": HOSTILE,
    "Cc, Reply-To, eight-bit names": (
        "From: Jürgen Groß <jurgen@example.net>\r\nTo: Bob <bob@example.org>\r\n"
        "Cc: =?utf-8?q?Zo=C3=AB?= <zoe@example.org>, dave@example.org\r\n"
        "Reply-To: Desk <desk@example.net>\r\nSubject: Quartalsübersicht\r\n\r\nHallo.\r\n"
    ).encode(),
    "no header at all": b"\r\njust a body\r\n",
    "names in no charset": b"From: J\xfcrgen <j@example.net>\r\nTo: =?x?Q?b?= <b@example.org>\r\n\r\n",
}


@pytest.mark.parametrize("data", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_an_accepted_messages_summary_is_the_one_the_listing_reads_back(
    db: Database, data: bytes
) -> None:
    """The live events announce a message from what ingest computed (`accepted_summary`):
    exactly what a read of the stored row gives, envelope-only recipients as Bcc included."""
    session = SessionInfo(Peer("127.0.0.1", 40000), helo="app.example.net", username="app\x00x")
    txn = replace(
        transaction(
            mail_from='"a\x00b"@example.net',
            recipients=("bob@example.org", "hidden@example.org", "ZOE@example.org"),
            data=data,
        ),
        session=session,
    )
    rec = record(txn)
    await accept(db, rec)
    [read] = await db.read(listing.summaries, [rec.id])
    assert message_log.accepted_summary(rec) == read
    assert ("", "hidden@example.org") in read.addresses.bcc


async def test_an_envelope_recipient_no_database_stores_reads_back_as_stored(db: Database) -> None:
    rec = record(transaction(recipients=("bob@example.org", "x\udcffy@example.org")))
    await accept(db, rec)
    [read] = await db.read(listing.summaries, [rec.id])
    assert read.addresses.bcc == (("", "x\ufffdy@example.org"),)
    assert message_log.accepted_summary(rec) == read


async def test_a_tagged_message_is_left_to_the_store(db: Database) -> None:
    """An `X-Tags` tag takes the spelling of a tag that exists already: only a read knows it."""
    await accept(db, record(transaction(data=b"X-Tags: Invoices\r\nSubject: t\r\n\r\nx\r\n")))
    tagged = record(transaction(data=b"X-Tags: invoices\r\nSubject: t\r\n\r\nx\r\n"))
    await accept(db, tagged)
    [read] = await db.read(listing.summaries, [tagged.id])
    assert read.tags == ("Invoices",)
    assert message_log.accepted_summary(tagged) is None


async def test_an_id_with_a_nul_names_no_message(db: Database) -> None:
    """A request's id with a NUL (`/api/v1/message/a%00b`) is no message's: not looked up, as
    PostgreSQL refuses a NUL even as a parameter."""
    stored = record(transaction())
    await accept(db, stored)
    for ident in ("a\x00b", stored.id[:-1] + "\x00"):
        assert await message_log.get_message(db, ident) is None
        assert await message_log.get_raw(db, ident) is None
    found = await message_log.get_message(db, stored.id)
    assert found is not None
    assert found.id == stored.id
