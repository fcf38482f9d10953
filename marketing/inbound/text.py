"""The customer's own words from a message: HTML reduced to text, quoted replies and signatures cut off.

Plain functions on strings. HTML is read by the standard library's tolerant parser and only its
text survives: no tag, attribute, script, style or comment reaches the result, and entities are
decoded once (the admin escapes whatever is shown). Quotes are recognised in the forms mail
programs write them in English and Chinese: `>` lines, "On … wrote:", "在 … 写道：", Outlook's
"-----Original Message-----" and "From: … Sent: …" blocks, Gmail and Outlook quote containers
in HTML. Signatures start at the "-- " delimiter or at a mobile footer ("Sent from my iPhone",
"发自我的iPhone").
"""

import re
import unicodedata
from html.parser import HTMLParser

_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "object", "iframe"})
# Containers that mail programs put the quoted earlier message in.
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "divrplyfwdmsg", "ms-outlook-quote")
_QUOTE_IDS = ("appendonsend", "divrplyfwdmsg", "mail-editor-reference-message-container")

_QUOTE_HEADERS = (
    re.compile(r"^\s*On\b.{0,300}\bwrote:?\s*$", re.I | re.S),
    re.compile(r"^\s*Am\b.{0,300}\bschrieb.{0,80}:\s*$", re.I | re.S),
    re.compile(r"^\s*Le\b.{0,300}\ba écrit\s*:\s*$", re.I | re.S),
    re.compile(r"^\s*在.{0,300}(写道|寫道)\s*[:：]?\s*$", re.S),
    re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message|原始邮件|原始郵件|转发邮件)\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*_{8,}\s*$"),
    re.compile(r"^\s*(From|发件人|寄件者)\s*[:：].+$", re.I),
)
_OUTLOOK_FIELDS = re.compile(r"^\s*(Sent|To|Subject|Date|Cc|发送时间|收件人|主题|日期)\s*[:：]", re.I)
_SIGNATURE_STARTS = (
    re.compile(r"^--\s?$"),
    re.compile(r"^\s*(Sent from my|Sent from Mail for|Get Outlook for|Sent from Outlook|Sent via)\b", re.I),
    re.compile(r"^\s*(发自我的|从我的|来自我的|發自我的|发自 ?(iPhone|iPad|华为|小米))"),
)
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_INLINE_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


class _TextExtractor(HTMLParser):
    """Collect the visible text of an HTML document, leaving out scripts, styles and quoted messages."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        self._quote_depth = 0
        self._stack: list[tuple[str, bool, bool]] = []  # tag, skipping, quoting

    def handle_starttag(self, tag: str, attrs) -> None:
        attributes = {name: (value or "") for name, value in attrs}
        classes = attributes.get("class", "").lower()
        identifier = attributes.get("id", "").lower()
        skipping = tag in _SKIPPED_TAGS
        quoting = (
            tag == "blockquote"
            or any(name in classes for name in _QUOTE_CLASSES)
            or any(identifier.startswith(name) for name in _QUOTE_IDS)
        )
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag in {"br", "hr", "img", "meta", "link", "input", "wbr"}:
            return  # void elements have no end tag
        self._stack.append((tag, skipping, quoting))
        self._skip_depth += skipping
        self._quote_depth += quoting

    def handle_endtag(self, tag: str) -> None:
        # Close up to the matching start tag; stray end tags are ignored, as browsers do.
        for position in range(len(self._stack) - 1, -1, -1):
            if self._stack[position][0] == tag:
                for _, skipping, quoting in self._stack[position:]:
                    self._skip_depth -= skipping
                    self._quote_depth -= quoting
                del self._stack[position:]
                break
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth and not self._quote_depth:
            self.parts.append(data)


def html_to_text(document: str) -> str:
    """Return the visible text of HTML mail, without quoted earlier messages, scripts or styles."""
    extractor = _TextExtractor()
    extractor.feed(document)
    extractor.close()
    lines = (_INLINE_SPACES.sub(" ", line).strip() for line in "".join(extractor.parts).splitlines())
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def strip_quotes_and_signature(text: str) -> str:
    """Cut a plain-text reply at the first quoted message or signature; keep everything before it."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            break
        if any(pattern.match(line) for pattern in _SIGNATURE_STARTS):
            break
        if _starts_quote(lines, index):
            break
        kept.append(line.rstrip())
    return _BLANK_RUNS.sub("\n\n", "\n".join(kept)).strip()


def _starts_quote(lines: list[str], index: int) -> bool:
    line = lines[index]
    for pattern in _QUOTE_HEADERS:
        if not pattern.match(line):
            continue
        if line.strip().lower().startswith(("from", "发件人", "寄件者")):
            # "From:" only begins a quote when Outlook's other header fields follow it.
            following = [candidate for candidate in lines[index + 1 : index + 4] if candidate.strip()]
            return any(_OUTLOOK_FIELDS.match(candidate) for candidate in following)
        return True
    # Mail programs wrap a long "On Tue, 3 Mar 2026 at 10:00, Ann <ann@example.com> wrote:" over lines.
    if re.match(r"^\s*(On|在)\b", line, re.I):
        return any(re.search(r"(wrote|写道|寫道)\s*[:：]?\s*$", later, re.I) for later in lines[index + 1 : index + 3])
    return False


def clean_body(text: str = "", html: str = "") -> tuple[str, str]:
    """Return (the customer's own words, the whole text before quotes were cut) from a plain and an HTML part.

    The plain part wins when it has words; HTML is used when there is no plain part.
    """
    original = text if text.strip() else (html_to_text(html) if html.strip() else "")
    original = unicodedata.normalize("NFC", original.replace("\x00", ""))
    own = strip_quotes_and_signature(original)
    if not own and html.strip() and text.strip():
        own = strip_quotes_and_signature(html_to_text(html))
    return own, original.strip()
