"""Content: e-mail templates, their per-locale variants and immutable versions, and generated SEO and social pieces.

A template is edited per locale (`TemplateVariant`); every change to a variant's subject, HTML or
text is frozen as a new `TemplateVersion`, which holds the compiled sources that every recipient
renders (layouts resolved, CSS inlined once).
"""

from django.core.exceptions import ValidationError
from django.db import models

from marketing.models import Product, Segment


class EmailTemplate(models.Model):
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True, default="")
    from_email = models.CharField(
        max_length=254,
        blank=True,
        default="",
        help_text='Sender, e.g. "Shop News <news@shop.example>"; blank uses DEFAULT_FROM_EMAIL.',
    )
    reply_to = models.CharField(max_length=254, blank=True, default="", help_text="Optional Reply-To address.")
    track_opens = models.BooleanField(
        default=False, help_text="Add an open pixel. Opens by privacy proxies are recorded as machine opens."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from campaigns.versions import address_problem

        errors = {
            name: problem for name in ("from_email", "reply_to") if (problem := address_problem(getattr(self, name)))
        }
        if errors:
            raise ValidationError(errors)


class TemplateVariant(models.Model):
    """The editable content of a template in one locale; a blank locale is the fallback for all."""

    template = models.ForeignKey(EmailTemplate, on_delete=models.CASCADE, related_name="variants")
    locale = models.CharField(
        max_length=35, blank=True, default="", help_text="BCP 47 tag such as de or de-AT; blank is the default."
    )
    subject = models.CharField(max_length=255)
    html = models.TextField(
        help_text='Jinja HTML, e.g. {% extends "emails/base.html" %}{% block content %}Hi {{ customer.first_name }}'
        "{% endblock %}. The context is documented under the editor."
    )
    text = models.TextField(blank=True, default="", help_text="Plain-text part; blank derives it from the HTML.")
    current_version = models.ForeignKey(
        "TemplateVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["template", "locale"]
        constraints = [models.UniqueConstraint(fields=["template", "locale"], name="template_variant_unique_locale")]

    def __str__(self) -> str:
        return f"{self.template} [{self.locale or 'default'}]"


class TemplateVersion(models.Model):
    """An immutable snapshot of a variant, with the compiled sources every recipient renders."""

    template = models.ForeignKey(EmailTemplate, on_delete=models.CASCADE, related_name="versions")
    locale = models.CharField(max_length=35, blank=True, default="")
    number = models.PositiveIntegerField()
    subject = models.CharField(max_length=255)
    html = models.TextField()
    text = models.TextField(blank=True, default="")
    compiled_html = models.TextField(help_text="Layouts resolved and CSS inlined; rendered per recipient.")
    compiled_text = models.TextField(help_text="The written text part, or one derived from the compiled HTML.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "locale", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "locale", "number"], name="template_version_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.template} [{self.locale or 'default'}] v{self.number}"


class Channel(models.TextChoices):
    META = "meta", "Search and Open Graph"
    X = "x", "X"
    FACEBOOK = "facebook", "Facebook"
    INSTAGRAM = "instagram", "Instagram"
    LINKEDIN = "linkedin", "LinkedIn"
    WEIBO = "weibo", "Weibo"


class ContentStatus(models.TextChoices):
    DRAFT = "draft", "To review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    REFUSED = "refused", "Refused (failed validation)"


class ContentPiece(models.Model):
    """Generated SEO metadata or a social post for a product or a category, reviewed before use."""

    channel = models.CharField(max_length=10, choices=Channel.choices)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, null=True, blank=True, related_name="content")
    category = models.CharField(max_length=120, blank=True, default="")
    locale = models.CharField(max_length=35, blank=True, default="")
    segment = models.ForeignKey(
        Segment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="content",
        help_text="The audience this piece was aimed at, if any.",
    )
    # "product:<sku>" or "category:<name>", and "" or "segment:<id>": one piece per channel, subject,
    # locale and audience, which regeneration updates in place.
    subject_key = models.CharField(max_length=200, editable=False)
    scope_key = models.CharField(max_length=40, blank=True, default="", editable=False)
    body = models.TextField(blank=True, default="", help_text="The post, or the meta description.")
    data = models.JSONField(default=dict, blank=True, help_text="Structured output: titles, Open Graph tags, JSON-LD.")
    template_name = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=8, choices=ContentStatus.choices, default=ContentStatus.DRAFT)
    problem = models.TextField(blank=True, default="", help_text="Why the output was refused.")
    generated_at = models.DateTimeField()
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["subject_key", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "subject_key", "locale", "scope_key"], name="content_piece_unique_subject"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} for {self.subject_key}"
