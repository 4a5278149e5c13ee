"""An HTML body as text, the way Mailpit writes the text of a message that has only HTML.

enmime (Mailpit's MIME reader) converts with `jaytaylor/html2text`'s default options; this module
follows its rules: text runs collapsed to single spaces and joined by spaces; `<br>` a line break;
`<p>`, `<ul>` and `<table>` paragraphs; `<div>` lines; `<li>` items as `* item`; `<b>`/`<strong>`
as `*bold*`; `<h1>` to `<h3>` underlined (and overlined for h1 and h2) with `*` or `-`; quotes
prefixed with `>` and wrapped at 74 columns; a link as `text ( href )` unless the href is its
text; head, title, style and script left out; then runs of blank lines as one, and the whole
trimmed.

The tree is built by a small linear scanner (`_TreeBuilder`, over `htmltags.py`'s pieces), not an
HTML5 tree builder (the standard library's tokenizer rescans an unclosed tag at every step:
quadratic), so markup that a browser would restructure (a `<div>` inside a `<p>`, say) can come
out with different line breaks. Bounded: at most `INPUT_LIMIT` characters are read, `NODE_LIMIT` nodes built, and nesting
past `DEPTH_LIMIT` is flattened.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from mxrelay.mime.htmltags import Markup, attributes, next_markup

INPUT_LIMIT = 1024 * 1024
NODE_LIMIT = 100_000
DEPTH_LIMIT = 200
LINE_LIMIT = 74
"""Columns a quoted line is wrapped at (jaytaylor's `maxLineLen`)."""

_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_SKIPPED = frozenset({"head", "title", "style", "script"})
_SPACING = re.compile(r"[ \r\n\t]+")
_NEWLINES = re.compile(r"\n\n+")


@dataclass(slots=True)
class _Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    children: list[_Node] = field(default_factory=list)

    def attr(self, name: str) -> str:
        return self.attrs.get(name, "")


_RAW_TEXT = frozenset({"script", "style", "title", "textarea"})


class _TreeBuilder:
    """A tree of elements and text from a linear scan: a tag is `<name ...>` (quoted attribute
    values may hold `>`); an end tag closes the nearest open element of its name; comments and
    declarations are dropped; a tag not closed by the end of the input ends the scan (as HTML5
    drops it). Every search moves forward, so the whole scan is linear in the input."""

    def __init__(self) -> None:
        self.root = _Node("#document")
        self.stack = [self.root]
        self.nodes = 0

    def _add(self, node: _Node) -> bool:
        self.nodes += 1
        if self.nodes > NODE_LIMIT:
            return False
        self.stack[-1].children.append(node)
        return True

    def _text(self, data: str) -> None:
        if not data:
            return
        text = html.unescape(data)
        last = self.stack[-1].children[-1] if self.stack[-1].children else None
        if last is not None and last.text is not None:
            last.text += text
        else:
            self._add(_Node("#text", text=text))

    def feed(self, source: str) -> None:
        pos = 0
        length = len(source)
        while self.nodes <= NODE_LIMIT and (markup := next_markup(source, pos)) is not None:
            self._text(source[pos : markup.start])
            if markup.cut:  # a tag cut off by the end of the input is dropped
                return
            pos = markup.end
            if not markup.tag:  # comments and declarations are dropped
                continue
            self._tag(source, markup)
            tag = markup.tag
            if tag in _RAW_TEXT and not markup.closing and self.stack[-1].tag == tag:
                close_tag = re.compile(r"</" + re.escape(tag) + r"\s*>", re.IGNORECASE)
                found = close_tag.search(source, pos)
                self._text(source[pos : length if found is None else found.start()])
                self.stack.pop()
                pos = length if found is None else found.end()
        self._text(source[pos:])

    def _tag(self, source: str, markup: Markup) -> None:
        tag = markup.tag
        if markup.closing:
            for index in range(len(self.stack) - 1, 0, -1):
                if self.stack[index].tag == tag:
                    del self.stack[index:]
                    return
            return
        attrs: dict[str, str] = {}
        for attribute in attributes(source, markup):
            attrs.setdefault(attribute.name, html.unescape(attribute.value))
        node = _Node(tag, attrs)
        closed = source[markup.end - 2] == "/" or tag in _VOID
        if self._add(node) and not closed and len(self.stack) < DEPTH_LIMIT:
            self.stack.append(node)


def html_to_text(source: str) -> str:
    """The text of an HTML body; never raises."""
    builder = _TreeBuilder()
    builder.feed(source[:INPUT_LIMIT])
    context = _Context()
    context.children(builder.root)
    text = "".join(context.out).replace("\n ", "\n")
    return _NEWLINES.sub("\n\n", text).strip()


class _Context:
    def __init__(self, ends_with_space: bool = False) -> None:
        self.out: list[str] = []
        self.prefix = ""
        self.ends_with_space = ends_with_space
        self.just_closed_div = False
        self.quote_level = 0
        self.line_length = 0
        self.pre = False

    def children(self, node: _Node) -> None:
        for child in node.children:
            self.visit(child)

    def visit(self, node: _Node) -> None:
        if node.text is not None:
            data = node.text if self.pre else _SPACING.sub(" ", node.text).strip(" ")
            self.emit(data)
            return
        self.element(node)

    def element(self, node: _Node) -> None:
        self.just_closed_div = False
        tag = node.tag
        if tag == "br":
            self.emit("\n")
        elif tag in ("h1", "h2", "h3"):
            self.heading(node)
        elif tag == "blockquote":
            self.quote(node)
        elif tag == "div":
            if self.line_length > 0:
                self.emit("\n")
            self.children(node)
            if not self.just_closed_div:
                self.emit("\n")
            self.just_closed_div = True
        elif tag == "li":
            self.emit("* ")
            self.children(node)
            self.emit("\n")
        elif tag in ("b", "strong"):
            inner = _Context(ends_with_space=True)
            inner.children(node)
            self.emit("*" + "".join(inner.out) + "*")
        elif tag == "a":
            self.link(node)
        elif tag in ("p", "ul", "table"):
            self.emit("\n\n")
            self.children(node)
            self.emit("\n\n")
        elif tag == "pre":
            self.pre = True
            self.children(node)
            self.pre = False
        elif tag not in _SKIPPED:
            self.children(node)

    def heading(self, node: _Node) -> None:
        inner = _Context()
        inner.children(node)
        text = "".join(inner.out)
        width = max([0, *(len(line) - 1 for line in text.split("\n"))])
        divider = ("*" if node.tag == "h1" else "-") * width
        if node.tag == "h3":
            self.emit("\n\n" + text + "\n" + divider + "\n\n")
        else:
            self.emit("\n\n" + divider + "\n" + text + "\n" + divider + "\n\n")

    def quote(self, node: _Node) -> None:
        self.quote_level += 1
        self.prefix = ">" * self.quote_level + " "
        self.emit("\n")
        if self.quote_level == 1:
            self.emit("\n")
        self.children(node)
        self.quote_level -= 1
        self.prefix = ">" * self.quote_level + (" " if self.quote_level else "")
        self.emit("\n\n")

    def link(self, node: _Node) -> None:
        first = node.children[0] if node.children else None
        link_text = first.text if first is not None and len(node.children) == 1 else None
        if first is not None and len(node.children) == 1 and first.tag == "img":
            self.emit(first.attr("alt"))
        else:
            self.children(node)
        href = node.attr("href").strip().removeprefix("mailto:")
        if href and (link_text or "") != href:
            self.emit("( " + href + " )")

    def emit(self, data: str) -> None:
        if not data:
            return
        for line in self.lines(data):
            if not line[0].isspace() and not self.ends_with_space and not data.startswith("."):
                self.out.append(" ")
                self.line_length += 1
            self.ends_with_space = line[-1].isspace()
            for char in line:
                self.out.append(char)
                self.line_length += 1
                if char == "\n":
                    self.line_length = 0
                    if self.prefix:
                        self.out.append(self.prefix)

    def lines(self, data: str) -> list[str]:
        """Lines of at most LINE_LIMIT columns inside quotes (jaytaylor's `breakLongLines`)."""
        if self.quote_level == 0:
            return [data]
        out: list[str] = []
        rest = data
        existing = self.line_length
        if existing >= LINE_LIMIT:
            out.append("\n")
            existing = 0
        while len(rest) + existing > LINE_LIMIT:
            cut = LINE_LIMIT - existing
            while cut >= 0 and not rest[cut].isspace():
                cut -= 1
            if cut == -1:
                cut = LINE_LIMIT - existing
                while cut < len(rest) and not rest[cut].isspace():
                    cut += 1
            out.append(rest[:cut] + "\n")
            while cut < len(rest) and rest[cut].isspace():
                cut += 1
            rest = rest[cut:]
            existing = 0
        if rest:
            out.append(rest)
        return out
