"""Publish template variants as immutable versions, checked and compiled once."""

from dataclasses import dataclass
from email.utils import getaddresses

from django.core.mail.message import sanitize_address
from django.db import transaction
from django.db.models import Max

from campaigns.compiler import compile_sources
from campaigns.lint import Problem, lint_template
from campaigns.models import EmailTemplate, TemplateVariant, TemplateVersion


@dataclass(frozen=True)
class VariantProblems:
    subject: list[Problem]
    html: list[Problem]
    text: list[Problem]

    def __bool__(self) -> bool:
        return bool(self.subject or self.html or self.text)

    def by_field(self) -> dict[str, list[str]]:
        return {name: [str(problem) for problem in problems] for name, problems in vars(self).items() if problems}


def lint_variant(subject: str, html: str, text: str = "") -> VariantProblems:
    """Check the three parts of a variant as they would be saved."""
    subject_problems = lint_template(subject, html=False)
    if "\n" in subject or "\r" in subject:
        subject_problems.append(Problem("the subject must be one line"))
    return VariantProblems(
        subject=subject_problems,
        html=lint_template(html, html=True, require_unsubscribe=True),
        text=lint_template(text, html=False) if text.strip() else [],
    )


def address_problem(value: str) -> str | None:
    """Return why a From or Reply-To value cannot be used as a header, or None when it can."""
    if not value:
        return None
    if any(char in value for char in "\r\n\x00"):
        return "must be one line: line breaks would let it add headers or recipients"
    addresses = getaddresses([value])
    if len(addresses) != 1:
        if "," in value or ";" in value:
            return f"{value!r} holds {len(addresses)} addresses; give one, such as News <news@shop.example>"
        return f"{value!r} is not an address such as News <news@shop.example>"
    name, address = addresses[0]
    if "@" not in address or " " in address or address.count("@") != 1:
        return f"{value!r} is not an address such as News <news@shop.example>"
    try:
        # What SMTP delivery does with it: a value it cannot encode would fail every send.
        sanitize_address(value, "utf-8")
    except (ValueError, IndexError) as error:
        return f"{value!r} cannot be used as a sender: {error}"
    return None


def publish_variant(variant: TemplateVariant) -> TemplateVersion | None:
    """Freeze the variant's content as its next version, unless it equals the current one. Return the new version."""
    current = variant.current_version
    if current is not None and (current.subject, current.html, current.text) == (
        variant.subject,
        variant.html,
        variant.text,
    ):
        return None
    compiled = compile_sources(variant.html, variant.text)
    with transaction.atomic():
        EmailTemplate.objects.select_for_update().filter(pk=variant.template_id).first()
        latest = TemplateVersion.objects.filter(template_id=variant.template_id, locale=variant.locale).aggregate(
            n=Max("number")
        )["n"]
        version = TemplateVersion.objects.create(
            template_id=variant.template_id,
            locale=variant.locale,
            number=(latest or 0) + 1,
            subject=variant.subject,
            html=variant.html,
            text=variant.text,
            compiled_html=compiled.html,
            compiled_text=compiled.text,
        )
        variant.current_version = version
        variant.save(update_fields=["current_version", "updated_at"])
    return version


def save_template(name: str, *, subject: str, html: str, text: str = "", locale: str = "", **fields) -> EmailTemplate:
    """Create or update a template's variant from code (demo, fixtures), refusing content the admin would refuse."""
    problems = lint_variant(subject, html, text)
    if problems:
        raise ValueError(f"template {name!r}: {problems.by_field()}")
    with transaction.atomic():
        template, _ = EmailTemplate.objects.update_or_create(name=name, defaults=fields)
        variant, _ = TemplateVariant.objects.update_or_create(
            template=template, locale=locale, defaults={"subject": subject, "html": html, "text": text}
        )
        publish_variant(variant)
    return template
