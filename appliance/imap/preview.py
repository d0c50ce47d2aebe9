"""PREVIEW (RFC 8970): a short plain-text preview of a message (pure; fetch reads the part).

The text is the first plain text part (any text/* but HTML), else the first text/html
part, of the message itself (not of attached messages), as Dovecot 2.3 picks it:
decoded (transfer encoding, charset), quoted lines (``>`` at the start) left out, tags
and the contents of script/style/blockquote dropped from HTML, every whitespace run one
space, at most :data:`PREVIEW_CHARS` characters. A message with only quoted text gets
``>`` and that text. Computed on each FETCH (no cache): the scan is bounded by
:data:`PREVIEW_SCAN` bytes of the part.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from appliance.mime.model import Part

# RFC 8970 3.1: at most 256 characters; 200 like Dovecot's snippets.
PREVIEW_CHARS = 200
PREVIEW_SCAN = 256 * 1024  # bytes of the chosen part read at most
_SPACE = re.compile(r"[ \x00-\x1f\x7f]+")  # ASCII only: a no-break space stays (as Dovecot)
_SKIPPED_HTML = frozenset({"script", "style", "blockquote"})


def _leaves(part: Part) -> list[Part]:
    """Leaf parts of the message's own structure (attached messages not entered)."""
    if part.children:
        return [leaf for child in part.children for leaf in _leaves(child)]
    return [part]


def choose_part(root: Part) -> Part | None:
    leaves = [p for p in _leaves(root) if p.type == "text" and p.message is None]
    plain = next((p for p in leaves if p.subtype != "html"), None)
    return plain or next((p for p in leaves if p.subtype == "html"), None)


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_HTML:
            self.skip += 1
        self.out.append(" ")  # every tag separates words (as Dovecot's html2text)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_HTML and self.skip:
            self.skip -= 1
        self.out.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return "".join(parser.out)


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def plain_preview(text: str) -> str:
    """Lines starting with ``>`` (after no indentation) are quotes and left out."""
    kept: list[str] = []
    quoted: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(">"):  # only at the very start: " > x" is text (as Dovecot)
            quoted.append(line[1:])
        else:
            kept.append(line)
    body = _collapse(" ".join(kept))
    if body:
        return body
    quote = _collapse(" ".join(quoted))
    return ">" + quote if quote else ""


def _truncate(text: str) -> str:
    return text[:PREVIEW_CHARS].rstrip()


def render(part: Part, decoded: bytes) -> str:
    """The preview of ``part`` (from :func:`choose_part`) given its decoded bytes."""
    charset = (part.param("charset") or "utf-8").lower()
    try:
        text = decoded.decode(charset, "replace")
    except LookupError:  # unknown charset: as UTF-8, bad bytes replaced (as Dovecot)
        text = decoded.decode("utf-8", "replace")
    if part.subtype == "html":
        return _truncate(_collapse(html_text(text)))
    return _truncate(plain_preview(text))
