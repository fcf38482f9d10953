"""Build deliverable e-mails: personalised parts, tracked links and the headers bulk senders need.

Each template version compiles once per process; every recipient then costs three renders, a
pass over the links and the MIME assembly. The headers follow Gmail's and Yahoo's bulk-sender
rules: a stable Message-ID, `List-Unsubscribe` with an HTTPS URL and a mailto, and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
"""

import functools
import re
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from urllib.parse import quote

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.crypto import salted_hmac

from campaigns.models import EmailTemplate, TemplateVersion
from campaigns.rendering import RenderError, compile_source, render
from campaigns.tracking import add_open_pixel, rewrite_links, rewrite_text_links, unsubscribe_token, unsubscribe_url

_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x00\u2028\u2029]+")
_BLANK_LINES = re.compile(r"\n[ \t]*(?=\n)")
_MANY_NEWLINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class CompiledVersion:
    version_id: int
    subject: object
    html: object
    text: object


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    links: tuple[str, ...] = ()


@functools.lru_cache(maxsize=256)
def _compile(version_id: int, subject: str, compiled_html: str, compiled_text: str) -> CompiledVersion:
    return CompiledVersion(
        version_id=version_id,
        subject=compile_source(subject, f"<version {version_id} subject>.txt"),
        html=compile_source(compiled_html, f"<version {version_id}>.html"),
        text=compile_source(compiled_text, f"<version {version_id}>.txt"),
    )


def compiled(version: TemplateVersion) -> CompiledVersion:
    """Return the version's templates, compiled once per process (versions never change)."""
    return _compile(version.pk, version.subject, version.compiled_html, version.compiled_text)


def single_line(text: str) -> str:
    """Fold line breaks and control characters into spaces: a header value stays one header."""
    return " ".join(_LINE_BREAKS.sub(" ", text).split())


def render_email(
    version: CompiledVersion, context: dict, *, message_id: int | None = None, track_opens: bool = False
) -> RenderedEmail:
    """Render the three parts for one recipient; with a message id, links are tracked through it."""
    subject = single_line(render(version.subject, context))
    context = {**context, "subject": subject}
    html = render(version.html, context)
    text = _MANY_NEWLINES.sub("\n\n", _BLANK_LINES.sub("\n", render(version.text, context))).strip() + "\n"
    if message_id is None:
        return RenderedEmail(subject, html, text)
    html, links = rewrite_links(html, message_id, skip=context["links"]["unsubscribe"])
    text = rewrite_text_links(text, message_id, links)
    if track_opens:
        html = add_open_pixel(html, message_id)
    return RenderedEmail(subject, html, text, tuple(links))


def locate_error(version: TemplateVersion, context: dict) -> RenderError | None:
    """Render the version's own sources (not the compiled ones) to find where a failure is, by part and line."""
    parts = (("subject", version.subject, ".txt"), ("HTML", version.html, ".html"), ("text", version.text, ".txt"))
    context = {**context, "subject": ""}
    for part, source, suffix in parts:
        if not source:
            continue
        try:
            render(compile_source(source, f"<version {version.pk} {part}>{suffix}"), context)
        except RenderError as error:
            return RenderError(f"{part}: {error.message}", error.line)
    return None


def sender(template: EmailTemplate) -> str:
    return template.from_email or settings.DEFAULT_FROM_EMAIL


def sender_domain(from_email: str) -> str:
    return parseaddr(from_email)[1].rpartition("@")[2] or "localhost"


def message_id_header(message_pk: int, from_email: str) -> str:
    """Return a Message-ID that stays the same on every attempt, so receivers can drop a repeat."""
    digest = salted_hmac("kairos.message-id", str(message_pk), algorithm="sha256").hexdigest()[:12]
    return f"<kairos.{message_pk}.{digest}@{sender_domain(from_email)}>"


def unsubscribe_mailto(message_pk: int, from_email: str) -> str:
    address = settings.UNSUBSCRIBE_MAILTO or f"unsubscribe@{sender_domain(from_email)}"
    return f"mailto:{address}?subject={quote('unsubscribe ' + unsubscribe_token(message_pk))}"


def recipient(to_email: str, name: str = "") -> str:
    return formataddr((single_line(name), to_email)) if name.strip() else to_email


def build_email(
    rendered: RenderedEmail,
    *,
    message_pk: int,
    to: str,
    from_email: str,
    reply_to: str = "",
    message_id: str,
) -> EmailMultiAlternatives:
    """Assemble the MIME message: text and HTML alternatives, and the unsubscribe headers."""
    headers = {
        "Message-ID": message_id,
        "List-Unsubscribe": f"<{unsubscribe_url(message_pk)}>, <{unsubscribe_mailto(message_pk, from_email)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=from_email,
        to=[to],
        reply_to=[reply_to] if reply_to else None,
        headers=headers,
    )
    email.attach_alternative(rendered.html, "text/html")
    return email
