"""How a browser reads an HTML page, for tests: html5lib, a parser written to the HTML standard's
tokenizer and tree builder (foreign content, raw text, the comment states), with scripting off,
as in a sandboxed page, and on, where `<noscript>` holds text."""

from __future__ import annotations

import html5lib

META = "{http://www.w3.org/1999/xhtml}meta"


def meta_equivs(html: str) -> list[str]:
    """The `http-equiv` of each meta element a browser would build from `html` as a page, with
    scripting off and then on (a browser acts on each, a refresh among them)."""
    found: list[str] = []
    for scripting in (False, True):
        document = html5lib.HTMLParser().parse(html, scripting=scripting)
        for meta in document.iter(META):
            found += (value for name, value in meta.attrib.items() if name == "http-equiv")
    return found
