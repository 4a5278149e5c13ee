"""`<meta http-equiv>` tags taken out of an HTML body, in every reading a browser could make of it.

A refresh (`<meta http-equiv=refresh content="0;url=…">`) would navigate the page showing the
body to anywhere, a load no Content Security Policy forbids; no other `http-equiv` is any use to
a message shown apart from its mail client. So every `meta` tag with an `http-equiv` attribute,
in any case, goes. Other metas stay (`charset`, which the page's own `Content-Type` overrides,
`viewport`, `color-scheme`): they change only how the body is laid out, and keeping them is safe
because what makes a tag a meta with `http-equiv` depends on nothing but its own text, which is
read here as a browser reads it.

Where a tag stands is another matter: whether a `<meta` is markup or text depends on what is
around it, as the browser's tree builder decides (inside `<svg>` a `<style>` holds markup, with
scripting on a `<noscript>` holds none), so no single scan can know. Two passes:

1. The scan of `htmltags.next_markup`, which reads every `<` as markup (in `<style>` too, where
   a browser would not), up to the last `<meta` (in a message's head, usually): the meta tags
   with `http-equiv` it finds are removed.
2. Then every `<meta` that is followed by what ends a tag's name, wherever it stands, is read as
   a tag from there: one with `http-equiv` is renamed `meta-removed`, an element no browser acts
   on. That catches a tag the first pass read as part of a comment, raw text or another tag's
   value, and one the first pass's removals have joined together (`<<meta http-equiv=a>meta …>`).
   `-removed` between `<meta` and what follows changes no other reading of the text around it
   (no tokenizer state heeds a lone `-` between letters, nor those letters), so no reading of
   the result holds a meta with `http-equiv`.

Bounded: the second pass reads at most `READ_LIMIT` times the body's length of tags (tags read
from inside other tags overlap); past that, every `<meta` left is renamed unread.
"""

from __future__ import annotations

import re

from mxrelay.mime.htmltags import Markup, next_markup, read_to_equiv

READ_LIMIT = 4
"""Characters of tags the second pass reads, per character of the body (plus `READ_MARGIN`)."""
READ_MARGIN = 64 * 1024
"""Read whatever the body's length: a short body's tags are read through."""
RENAMED = "-removed"
"""Put after the name of a `<meta` left with `http-equiv`: it reads `<meta-removed …>`."""
_META = re.compile(r"<meta(?=[\t\n\f\r />])", re.I | re.A)


def without_meta_equiv(source: str) -> str:
    """`source` without a `<meta>` tag that has an `http-equiv` attribute in any reading a
    browser could make of it; other metas are kept. Never raises."""
    last = -1
    for found in _META.finditer(source):
        last = found.start()
    return source if last == -1 else _rename_left(_remove_read(source, last))


def _remove_read(source: str, last: int) -> str:
    pieces: list[str] = []
    pos = copied = 0
    while (markup := next_markup(source, pos)) is not None and markup.start <= last:
        if markup.cut:
            break
        pos = markup.end
        if _is_meta_equiv(source, markup):
            pieces.append(source[copied : markup.start])
            copied = pos
    pieces.append(source[copied:])
    return "".join(pieces)


def _is_meta_equiv(source: str, markup: Markup) -> bool:
    if markup.tag != "meta" or markup.closing:
        return False
    return read_to_equiv(source, markup.attributes, markup.end)[0]


def _rename_left(source: str) -> str:
    budget = READ_LIMIT * len(source) + READ_MARGIN
    pieces: list[str] = []
    copied = 0
    for found in _META.finditer(source):
        name_end = found.end()
        if budget > 0:
            equiv, stopped = read_to_equiv(source, name_end)
            budget -= stopped - name_end
        else:
            equiv = True
        if equiv:
            pieces += (source[copied:name_end], RENAMED)
            copied = name_end
    pieces.append(source[copied:])
    return "".join(pieces)
