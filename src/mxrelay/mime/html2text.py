"""An HTML body as text, the way Mailpit writes the text of a message that has only HTML.

enmime (Mailpit's MIME reader) converts with `jaytaylor/html2text`'s default options; this module
follows its rules: text runs collapsed to single spaces and joined by spaces; `<br>` a line break;
`<p>`, `<ul>` and `<table>` paragraphs; `<div>` lines; `<li>` items as `* item`; `<b>`/`<strong>`
as `*bold*`; `<h1>` to `<h3>` underlined (and overlined for h1 and h2) with `*` or `-`; quotes
prefixed with `>` and wrapped at 74 columns; a link as `text ( href )` unless the href is its
text; head, title, style and script left out; then runs of blank lines as one, and the whole
trimmed.

The tree is built with the standard library's tokenizer, not an HTML5 tree builder, so markup that
a browser would restructure (a `<div>` inside a `<p>`, say) can come out with different line
breaks. Bounded: at most `INPUT_LIMIT` characters are read, `NODE_LIMIT` nodes built, and nesting
past `DEPTH_LIMIT` is flattened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

INPUT_LIMIT = 2 * 1024 * 1024
NODE_LIMIT = 200_000
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


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#document")
        self.stack = [self.root]
        self.nodes = 0

    def _add(self, node: _Node) -> bool:
        self.nodes += 1
        if self.nodes > NODE_LIMIT:
            return False
        self.stack[-1].children.append(node)
        return True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {name: value or "" for name, value in attrs})
        if self._add(node) and tag not in _VOID and len(self.stack) < DEPTH_LIMIT:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._add(_Node(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        if self.stack[-1].children and self.stack[-1].children[-1].text is not None:
            self.stack[-1].children[-1].text += data
        else:
            self._add(_Node("#text", text=data))


def html_to_text(html: str) -> str:
    """The text of an HTML body; never raises."""
    builder = _TreeBuilder()
    try:
        builder.feed(html[:INPUT_LIMIT])
        builder.close()
    except (AssertionError, ValueError):  # the tokenizer's own complaints about broken markup
        pass
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
