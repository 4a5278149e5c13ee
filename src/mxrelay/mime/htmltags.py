"""The tags of an HTML body found by a linear scan that ends each piece of markup where a
browser's tokenizer ends it, and the one rewrite of them the message view makes: every link opened
in a new window, as Mailpit's embed mode (`/view/{ID}.html?embed=1`) sets them.

`html2text.py` builds its tree from the same scan (`next_markup`, `attributes`), and
`htmlmeta.py` finds `<meta>` tags with it. As in the HTML tokenizer: a quote opens an attribute
value only right after `=` (elsewhere it is part of a name), so a `>` inside a quoted value does
not end the tag and one inside a name does; an unquoted value ends at white space or `>`; white
space is HTML's five characters, no other; a comment ends at its first `-->` or `--!>`, or at
once as `<!-->` or `<!--->`; a doctype, `<!…>`, `<?…>` and `</ …>` end at their first `>`. A tag
the input ends inside is `cut` (a browser drops it).

The standard library's tokenizer is not used: it rescans an unclosed tag at every step, which is
quadratic in hostile input. Here every search is one of the module's patterns, started where the
last one stopped, so a scan is linear in the body, which the MIME reader has already bounded
(`parts.PartLimits`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_TAG_NAME = re.compile(r"/?([A-Za-z][^\t\n\f\r />]*)")
"""A tag's name after its `<` (an end tag's after `</`)."""
# The tokenizer's attribute states as patterns. Every quantifier is possessive and the choices
# start with different characters, so a pattern reads a tag once, as the tokenizer does, and
# never fails part-way: a quoted value the input ends inside runs to the end, as does the tag.
_SEPARATORS = r"[\t\n\f\r /]"
_SPACE = r"[\t\n\f\r ]"
_VALUE = r"""(?P<value>"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z)|[^\t\n\f\r >"'][^\t\n\f\r >]*+|(?=>)|\Z)"""
_ATTRIBUTE = (
    r"(?P<name>[^\t\n\f\r />][^\t\n\f\r />=]*+)"  # may begin with `=` or a quote
    rf"(?>{_SPACE}*+={_SPACE}*+{_VALUE}|(?!{_SPACE}*+=))"
)
_NEXT_ATTRIBUTE = re.compile(rf"{_SEPARATORS}*+(?:{_ATTRIBUTE})?")
_TAG_REST = re.compile(rf"(?:{_SEPARATORS}++|{_ATTRIBUTE})*+(?P<close>>)?")
"""A tag's attributes and its `>` (missing when the input ends first)."""
_EQUIV = r"http-equiv(?=[\t\n\f\r />=]|\Z)"
_HAS_EQUIV = re.compile(
    rf"(?:{_SEPARATORS}++|(?!{_EQUIV}){_ATTRIBUTE})*+(?P<equiv>{_EQUIV})?", re.I | re.A
)
"""A tag's attributes up to one named `http-equiv` in any case, if it has one."""
_LT = re.compile("<")
_GT = re.compile(">")
_COMMENT_END = re.compile("--!?>")

LINK_ATTRIBUTES = ' target="_blank" rel="noreferrer noopener"'
"""What Mailpit's embed mode sets on every `<a>`: a new window, told nothing of the page."""
_TEXT_ONLY = frozenset(
    {"script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes"}
)
"""Elements whose content a browser reads as text, up to their end tag: a `<a` there is no link."""
_TEXT_ENDS = {
    tag: re.compile(r"</" + re.escape(tag) + r"[\s/>]", re.IGNORECASE) for tag in _TEXT_ONLY
}
_REPLACED = frozenset({"target", "rel"})


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute of a tag, as the HTML tokenizer reads it."""

    name: str
    """In lower case; a browser keeps the first of two of one name."""
    value: str
    """As written, without its quotes; character references are not decoded."""
    start: int
    """Where its name begins."""
    end: int
    """Just after it (after its closing quote when quoted)."""


def _find(pattern: re.Pattern[str], source: str, pos: int) -> int:
    """Where `pattern` is next found at or after `pos`; -1 when nowhere."""
    found = pattern.search(source, pos)
    return -1 if found is None else found.start()


def next_attribute(source: str, pos: int) -> Attribute | int:
    """The next attribute of the tag being read at `pos` (just after its name or an attribute);
    when there is none, where the tag ends: the index of its `>`, or -1 when the input ends
    first."""
    found = _NEXT_ATTRIBUTE.match(source, pos)
    assert found is not None  # every part of the pattern may be empty
    end = found.end()
    name = found.group("name")
    if name is None:
        return end if source.startswith(">", end) else -1
    value = found.group("value") or ""
    if value[:1] in ('"', "'"):
        if len(value) < 2 or value[-1] != value[0]:
            return -1  # the input ends inside the quotes
        value = value[1:-1]
    return Attribute(name.lower(), value, found.start("name"), end)


def tag_end(source: str, pos: int) -> int:
    """Where the tag whose name ends at `pos` ends (the index of its `>`); -1 when the input
    ends first."""
    found = _TAG_REST.match(source, pos)
    assert found is not None
    return found.end() - 1 if found.group("close") else -1


def read_to_equiv(source: str, pos: int, end: int | None = None) -> tuple[bool, int]:
    """Whether the tag whose attributes begin at `pos` (and end by `end`) has an `http-equiv`
    attribute, in any case; and where reading them stopped: after that attribute's name, or at
    the tag's `>` (at the input's end when it has none: such a tag counts too)."""
    found = _HAS_EQUIV.match(source, pos, len(source) if end is None else end)
    assert found is not None
    return found.group("equiv") is not None, found.end()


def declaration_end(source: str, lt: int) -> int | None:
    """Just after the comment (`<!-- -->`), declaration (`<!DOCTYPE …>`) or processing
    instruction at `lt` (the end of the input when it never ends); None when `lt` opens none."""
    if not source.startswith(("<!", "<?"), lt):
        return None
    if source.startswith("<!--", lt):
        for abrupt in (lt + 2, lt + 3):  # `<!-->` and `<!--->` are whole comments
            if source.startswith("-->", abrupt):
                return abrupt + 3
        close = _COMMENT_END.search(source, lt + 4)
        return len(source) if close is None else close.end()
    close_at = _find(_GT, source, lt + 2)
    return len(source) if close_at == -1 else close_at + 1


def _bogus_end(source: str, lt: int) -> int | None:
    """Just after the `</>` (ignored) or `</ …>` (a comment, to a browser) at `lt`; None when
    `lt` opens neither."""
    if not source.startswith("</", lt) or lt + 2 >= len(source):
        return None
    close = _find(_GT, source, lt + 2)
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
    while (lt := _find(_LT, source, pos)) != -1:
        skipped = declaration_end(source, lt)
        if skipped is not None:
            return Markup(lt, skipped)
        name = _TAG_NAME.match(source, lt + 1)
        if name is None:
            bogus = _bogus_end(source, lt)
            if bogus is not None:
                return Markup(lt, bogus)
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


def attributes(source: str, markup: Markup) -> Iterator[Attribute]:
    """The attributes of the tag `markup`, in the order written."""
    pos = markup.attributes
    while isinstance(found := next_attribute(source, pos), Attribute):
        yield found
        pos = found.end


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
            found = _find(_TEXT_ENDS[markup.tag], source, pos)
            pos = len(source) if found == -1 else found
    pieces.append(source[copied:])
    return "".join(pieces)


def _link(source: str, markup: Markup) -> str:
    kept = (
        " " + source[found.start : found.end]
        for found in attributes(source, markup)
        if found.name not in _REPLACED
    )
    return source[markup.start : markup.attributes] + "".join(kept) + LINK_ATTRIBUTES + ">"
