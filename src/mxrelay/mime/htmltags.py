"""The tags of an HTML body found by a linear scan, and the one rewrite of them the message view
makes: every link opened in a new window, as Mailpit's embed mode (`/view/{ID}.html?embed=1`)
sets them.

`html2text.py` builds its tree from the same scan (`next_markup`, `ATTRIBUTE`). The
standard library's tokenizer is not used: it rescans an unclosed tag at every step, which is
quadratic in hostile input. Here every search moves forward, so a scan is linear in the body,
which the MIME reader has already bounded (`parts.PartLimits`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TAG_NAME = re.compile(r"/?([A-Za-z][^\s/>]*)")
"""A tag's name after its `<` (an end tag's after `</`)."""
ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")
"""One attribute of a tag: its name, and its value as written (quoted or not)."""

LINK_ATTRIBUTES = ' target="_blank" rel="noreferrer noopener"'
"""What Mailpit's embed mode sets on every `<a>`: a new window, told nothing of the page."""
_TEXT_ONLY = frozenset(
    {"script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes"}
)
"""Elements whose content a browser reads as text, up to their end tag: a `<a` there is no link."""
_REPLACED = frozenset({"target", "rel"})


def tag_end(source: str, pos: int) -> int:
    """Where the tag going on at `pos` ends (its `>`), quoted values skipped; -1 at the end."""
    quote = ""
    length = len(source)
    while pos < length:
        if quote:
            pos = source.find(quote, pos)
            if pos == -1:
                return -1
            quote = ""
            pos += 1
            continue
        gt = source.find(">", pos)
        if gt == -1:
            return -1
        quotes = [q for q in (source.find('"', pos, gt), source.find("'", pos, gt)) if q != -1]
        if not quotes:
            return gt
        first = min(quotes)
        quote = source[first]
        pos = first + 1
    return -1


def declaration_end(source: str, lt: int) -> int | None:
    """Just after the comment (`<!-- -->`), declaration (`<!DOCTYPE …>`) or processing
    instruction at `lt` (the end of the input when it never ends); None when `lt` opens none."""
    if not source.startswith(("<!", "<?"), lt):
        return None
    close = source.find("-->", lt + 4) if source.startswith("<!--", lt) else -1
    if close != -1:
        return close + 3
    close = source.find(">", lt)
    return len(source) if close == -1 else close + 1


@dataclass(frozen=True, slots=True)
class Markup:
    """A tag, comment or declaration found at `start` (its `<`), ending just before `end`."""

    start: int
    end: int
    tag: str = ""
    """The tag's name in lower case; empty for a comment or declaration."""
    attributes: int = 0
    """Where the tag's attributes begin (after its name)."""
    closing: bool = False
    cut: bool = False
    """The tag never ends: the input stops inside it (`end` is the input's end)."""


def next_markup(source: str, pos: int) -> Markup | None:
    """The first markup at or after `pos` (a `<` that opens none is text); None when no more."""
    length = len(source)
    while pos < length:
        lt = source.find("<", pos)
        if lt == -1:
            return None
        skipped = declaration_end(source, lt)
        if skipped is not None:
            return Markup(lt, skipped)
        name = TAG_NAME.match(source, lt + 1)
        if name is None:
            pos = lt + 1
            continue
        end = tag_end(source, name.end())
        return Markup(
            lt,
            length if end == -1 else end + 1,
            name.group(1).lower(),
            name.end(),
            source[lt + 1] == "/",
            end == -1,
        )
    return None


def open_links_apart(source: str) -> str:
    """`source` with every `<a>` start tag given `target="_blank"` and `rel="noreferrer
    noopener"` in place of any it had; comments, declarations and the text of elements such as
    `<script>` and `<textarea>` are left alone, and so is everything after a tag that never ends
    (a browser drops it). Never raises."""
    pieces: list[str] = []
    pos = copied = 0
    while (markup := next_markup(source, pos)) is not None and not markup.cut:
        pos = markup.end
        if not markup.tag or markup.closing:
            continue
        if markup.tag == "a":
            pieces += (source[copied : markup.start], _link(source, markup))
            copied = pos
        elif markup.tag in _TEXT_ONLY:
            text_end = re.compile(r"</" + re.escape(markup.tag) + r"[\s/>]", re.IGNORECASE)
            found = text_end.search(source, pos)
            pos = len(source) if found is None else found.start()
    pieces.append(source[copied:])
    return "".join(pieces)


def _link(source: str, markup: Markup) -> str:
    kept = (
        " " + found.group(0)
        for found in ATTRIBUTE.finditer(source, markup.attributes, markup.end - 1)
        if found.group(1).lower() not in _REPLACED
    )
    return source[markup.start : markup.attributes] + "".join(kept) + LINK_ATTRIBUTES + ">"
