"""HTML mail as the words a listener needs: text in reading order, one block per line.

Why lxml (libxml2 2.14's HTML parser, which tokenises as HTML5 does): it is C,
linear in the input, and bounded on hostile nesting — libxml2 stops building
the tree at depth 256 instead of walking ever longer stacks. Lexbor (selectolax)
parses browsers' way but its tree building grew quadratically with nesting here
(20,000 nested ``<div>`` took 1.2 s, 100,000 took 75 s); BeautifulSoup and
html2text are pure Python and 20-50 times slower on a 10,000-line table
(docs/mailstore.md has the figures). Nothing is fetched: no network, no DTD,
no entities beyond HTML's own; scripts, styles and the head are not text.

Links keep their text only (the URL is not worth hearing); images their
``alt``. Markup that looks like speech markup (``<speak>``, ``<break>``,
``<audio src>``) is unknown HTML here: only its text content remains.
"""

from __future__ import annotations

import lxml.etree
import lxml.html

MAX_HTML = 512 * 1024
"""Characters of HTML parsed at most; the rest of a larger part is not read."""

_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "object",
                   "iframe", "svg", "math", "select", "button"})
_BLOCK = frozenset({"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3",
                    "h4", "h5", "h6", "blockquote", "pre", "section", "article", "header",
                    "footer", "hr", "dd", "dt", "dl", "address", "center", "form",
                    "fieldset", "figure", "figcaption", "main", "nav", "aside", "caption",
                    "tbody", "thead", "tfoot"})
_CELL = frozenset({"td", "th"})


def html_to_text(html: str, limit: int) -> tuple[str, bool]:
    """(text, cut): the readable text of `html`, at most about `limit` characters; `cut` when
    the HTML or the text was longer than read. Quoted replies (``<blockquote type=cite>``,
    Gmail's ``gmail_quote``, Outlook's reply header) are left out."""
    cut = len(html) > MAX_HTML
    html = html[:MAX_HTML]
    if not html.strip():
        return "", cut
    try:
        root = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return "", cut
    out: list[str] = []
    size = 0
    for event, element in lxml.etree.iterwalk(root, events=("start", "end")):
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        pieces: list[str] = []
        if event == "start":
            if tag in _SKIP or _is_quote(tag, element):
                # Not text: its tail (what follows it) is still read at its "end" event.
                _skip_children(element)
                continue
            if tag in _BLOCK:
                pieces.append("\n")
            elif tag in _CELL:
                pieces.append(" ")
            elif tag == "img" and element.get("alt"):
                pieces.append(f" {element.get('alt')} ")
            if element.text:
                pieces.append(element.text)
        else:
            if tag in _BLOCK:
                pieces.append("\n")
            if element.tail:
                pieces.append(element.tail)
        for piece in pieces:
            out.append(piece[: limit + 1 - size])
            size += len(out[-1])
        if size > limit:
            cut = True
            break
    return "".join(out), cut


def _is_quote(tag: str, element) -> bool:
    if tag == "blockquote" and (element.get("type") or "").lower() == "cite":
        return True
    if tag == "div":
        classes = (element.get("class") or "").split()
        if "gmail_quote" in classes or element.get("id") in ("divRplyFwdMsg", "appendonsend"):
            return True
    return False


def _skip_children(element) -> None:
    """Empty `element` in place (its text and children), so the walk goes straight past it."""
    element.text = None
    for child in list(element):
        element.remove(child)
