"""Message text as the log shows it: charsets, RFC 2047 encoded words and transfer encodings, bounded.

Everything here is for reading a message (summaries, search, the API's message view); nothing is
written back into a message. Three rules make hostile input cheap:

- **Only text charsets.** A charset is decoded with Python's codec only if it is on
  `TEXT_CHARSETS` (ASCII, UTF-8/16/32, the ISO 8859 and Windows code pages, the CJK multibyte
  sets...: decoders written in C, linear, and never producing lone surrogates). Anything else, an
  unknown name or a codec that is no mail charset (`punycode`, quadratic in Python; `utf-7`,
  `unicode_escape` and `raw_unicode_escape`, which emit lone surrogates; `idna`; `undefined`), is
  decoded as UTF-8 with replacement characters.
- **A bounded amount.** Callers say how many decoded bytes they want (`limit`); only that much of a
  body is transfer-decoded and charset-decoded.
- **A decoder of our own for RFC 2047.** The standard library's `email.header.decode_header` and
  the `email.policy.default` header parser both take time quadratic in the number of encoded
  words (a 128 KiB subject of `=?utf-8?q?a?=` words: 1.1 s and 0.5 GB with `policy.default`), so
  `decode_words` is a single regular-expression pass, linear in the input, itself cut at
  `WORDS_INPUT_LIMIT` characters.
"""

from __future__ import annotations

import binascii
import codecs
import re

TEXT_CHARSETS = frozenset(
    {
        "ascii",
        "utf-8",
        "utf-8-sig",
        "utf-16",
        "utf-16-be",
        "utf-16-le",
        "utf-32",
        "utf-32-be",
        "utf-32-le",
        *(f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
        *(f"cp{n}" for n in range(1250, 1259)),
        *(
            f"cp{n}"
            for n in [
                "037",
                "273",
                "424",
                "437",
                "500",
                "720",
                "737",
                "775",
                "850",
                "852",
                "855",
                "856",
                "857",
                "858",
                "860",
                "861",
                "862",
                "863",
                "864",
                "865",
                "866",
                "869",
                "874",
                "875",
                "932",
                "949",
                "950",
                "1006",
                "1026",
                "1125",
                "1140",
            ]
        ),
        "koi8-r",
        "koi8-t",
        "koi8-u",
        "kz1048",
        "ptcp154",
        "tis-620",
        "hp-roman8",
        *(
            f"mac-{name}"
            for name in (
                "arabic",
                "croatian",
                "cyrillic",
                "farsi",
                "greek",
                "iceland",
                "latin2",
                "roman",
                "romanian",
                "turkish",
            )
        ),
        "big5",
        "big5hkscs",
        "euc_jp",
        "euc_jis_2004",
        "euc_jisx0213",
        "euc_kr",
        "gb2312",
        "gbk",
        "gb18030",
        "hz",
        "johab",
        "shift_jis",
        "shift_jis_2004",
        "shift_jisx0213",
        *(f"iso2022_{name}" for name in ("jp", "jp_1", "jp_2", "jp_2004", "jp_3", "jp_ext", "kr")),
    }
)
"""Python codec names (as `codecs.lookup(name).name` gives them) decoded as themselves."""

FALLBACK_CHARSET = "utf-8"
"""What text in any other charset is decoded as (with replacement characters)."""

WORDS_INPUT_LIMIT = 16 * 1024
"""Characters of one header value looked at for encoded words; the rest is left out."""

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"[ \t\r\n]*")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]+")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def text_codec(charset: str | None) -> str:
    """The codec `charset` is decoded with: itself when it is a text charset, else UTF-8."""
    if not charset:
        return FALLBACK_CHARSET
    name = charset.strip().strip('"').strip()
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):
        return FALLBACK_CHARSET
    return codec if codec in TEXT_CHARSETS else FALLBACK_CHARSET


def decode_text(data: bytes, charset: str | None, limit: int | None = None) -> str:
    """`data` (at most `limit` bytes of it) as text in `charset`; never raises."""
    if limit is not None and len(data) > limit:
        data = data[:limit]
    return data.decode(text_codec(charset), "replace")


def without_surrogates(text: str) -> str:
    """`text` with each lone surrogate as U+FFFD (a pair left as two code points becomes its
    character). The standard library's decoders leave bytes they cannot decode as lone
    surrogates (`surrogateescape`: its email header parser does so in encoded words), and no
    UTF-8 encoder takes them: not a JSON response, not a database. Valid text costs one encode
    and is returned as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def decode_words(text: str, limit: int = WORDS_INPUT_LIMIT) -> str:
    """Decode RFC 2047 encoded words (`=?utf-8?B?...?=`) in a header value; never raises.

    Whitespace between two encoded words is dropped (RFC 2047 section 6.2) and neighbouring words
    in one charset are decoded together, so a character split across words comes out whole. Text
    that is not encoded is kept as it is; input beyond `limit` characters is left out.
    """
    if len(text) > limit:
        text = text[:limit]
    if "=?" not in text:
        return text
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        if pending and _BETWEEN_WORDS.fullmatch(gap) is None:
            out.append(decode_text(bytes(pending), pending_charset))
            pending.clear()
        if not pending:
            out.append(gap)
        charset = match.group(1).partition("*")[0]  # RFC 2231 section 5: charset*language
        if pending and charset.lower() != pending_charset.lower():
            out.append(decode_text(bytes(pending), pending_charset))
            pending.clear()
        pending_charset = charset
        pending += _word_bytes(match.group(2), match.group(3))
        pos = match.end()
    if pending:
        out.append(decode_text(bytes(pending), pending_charset))
    out.append(text[pos:])
    return "".join(out)


def _word_bytes(encoding: str, payload: str) -> bytes:
    raw = payload.encode("ascii", "replace")
    if encoding in "bB":
        return base64_prefix(raw)
    return _Q_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), raw.replace(b"_", b" "))


def base64_prefix(data: bytes, limit: int | None = None) -> bytes:
    """Base64 decoded leniently (characters outside the alphabet and a partial last group are
    ignored), at most `limit` decoded bytes; never raises."""
    compact = _NOT_BASE64.sub(b"", data)
    if limit is not None:
        compact = compact[: (limit + 2) // 3 * 4]
    tail = len(compact) % 4
    if tail == 1:  # six bits: not even one byte
        compact = compact[:-1]
    elif tail:
        compact += b"=" * (4 - tail)
    return binascii.a2b_base64(compact)[:limit]


def decode_transfer(body: bytes, encoding: str, limit: int) -> bytes:
    """The first `limit` bytes of a body under its Content-Transfer-Encoding; never raises.

    Only about as much input as `limit` needs is decoded. Unknown encodings come back as they
    are (what a reader would see).
    """
    encoding = encoding.strip().lower()
    if encoding == "base64":
        # A base64 line of 76 characters carries 57 bytes; allow for any line length.
        return base64_prefix(body[: limit * 2 + 4], limit)
    if encoding == "quoted-printable":
        head = body[: limit * 3 + 3]
        if len(head) < len(body):
            cut = head.rfind(b"\n")  # never cut inside an escape or a soft line break
            head = head[: cut + 1] if cut > 0 else head[: len(head) - 2]
        return binascii.a2b_qp(head)[:limit]
    return body[:limit]
