"""The conversation inbox in the admin: what customers wrote, what Kairos read and did, and a person's tools.

Filters by intent, status and "needs a person"; actions to correct the label (stored on the message,
learnt by the next `train_intents`), to reply with a template, and to close. Everything a message
holds is shown through `format_html`, so no customer's text is ever rendered as markup.
"""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from campaigns.conversations.actions import record_action, reply_by_person
from campaigns.models import EmailTemplate, Message
from marketing.models import InboundMessage, InboundStatus
from ml.intents import INTENTS, SENTIMENTS

LIST_BODY_CHARS = 80


class LabelForm(forms.Form):
    intent = forms.ChoiceField(choices=[(intent, intent) for intent in INTENTS])
    sentiment = forms.ChoiceField(
        choices=[("", "keep what Kairos read")] + [(s, s) for s in SENTIMENTS], required=False
    )


class ReplyForm(forms.Form):
    template = forms.ModelChoiceField(
        queryset=EmailTemplate.objects.filter(variants__current_version__isnull=False).distinct().order_by("name"),
        help_text="Sent to the customer's stored address (or the sender's, when unknown), in the language they wrote in.",
    )


class ReplyInline(admin.TabularInline):
    model = Message
    fk_name = "inbound_message"
    fields = ["kind", "template", "to_email", "status", "sent_at", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "replies"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    list_display = [
        "received_at", "sender", "excerpt", "intent", "sentiment", "confidence", "status", "needs_person", "last_action",
    ]  # fmt: skip
    list_filter = ["needs_person", "status", "intent", "sentiment", "language", "channel"]
    search_fields = ["from_email", "subject", "body", "customer__external_id", "customer__email"]
    list_select_related = ["customer"]
    date_hierarchy = "received_at"
    actions = ["correct_label", "reply_with_template", "close"]
    inlines = [ReplyInline]
    fieldsets = [
        (None, {"fields": ["customer", "from_email", "from_name", "channel", "received_at", "subject", "body_view"]}),
        ("What Kairos read", {"fields": ["language", "intent", "sentiment", "confidence", "sentiment_confidence", "classified_by"]}),
        ("What Kairos did", {"fields": ["status", "needs_person", "needs_person_reason", "no_reply_reason", "actions_view"]}),
        ("A person's label (used by the next training)", {"fields": ["corrected_intent", "corrected_sentiment", "corrected_by", "corrected_at"]}),
        ("Original", {"fields": ["original_view", "header_message_id"], "classes": ["collapse"]}),
    ]  # fmt: skip
    readonly_fields = [
        "customer", "from_email", "from_name", "channel", "received_at", "subject", "body_view", "language", "intent",
        "sentiment", "confidence", "sentiment_confidence", "classified_by", "status", "needs_person",
        "needs_person_reason", "no_reply_reason", "actions_view", "corrected_intent", "corrected_sentiment",
        "corrected_by", "corrected_at", "original_view", "header_message_id",
    ]  # fmt: skip

    def has_add_permission(self, request) -> bool:
        return False  # messages come from customers, never from a form

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the inbox is a record; erasure removes personal data through the customer

    @admin.display(description="from")
    def sender(self, message: InboundMessage) -> str:
        return message.from_email or (message.customer.external_id if message.customer else "unknown")

    @admin.display(description="message")
    def excerpt(self, message: InboundMessage) -> str:
        text = " ".join(f"{message.subject} {message.body}".split())
        return text[:LIST_BODY_CHARS] + ("…" if len(text) > LIST_BODY_CHARS else "")

    @admin.display(description="what Kairos did last")
    def last_action(self, message: InboundMessage) -> str:
        return message.actions[-1]["what"] if message.actions else "—"

    @admin.display(description="body")
    def body_view(self, message: InboundMessage) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', message.body)

    @admin.display(description="the whole text, with quotes and signature")
    def original_view(self, message: InboundMessage) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', message.original or message.body)

    @admin.display(description="actions")
    def actions_view(self, message: InboundMessage) -> str:
        if not message.actions:
            return "—"
        return format_html(
            "<ol>{}</ol>", format_html_join("", "<li>{}: {}</li>", ((a["at"][:19], a["what"]) for a in message.actions))
        )

    def _form_page(self, request, queryset, form, action: str, title: str):
        return TemplateResponse(
            request,
            "admin/campaigns/inbox_action.html",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "form": form,
                "action": action,
                "messages_chosen": queryset,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Correct the label (the next training learns it)", permissions=["change"])
    def correct_label(self, request, queryset):
        form = LabelForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "correct_label", "Correct the intent and sentiment")
        intent, sentiment = form.cleaned_data["intent"], form.cleaned_data["sentiment"]
        now, author = timezone.now(), request.user.get_username()
        with transaction.atomic():
            for pk in queryset.values_list("pk", flat=True):
                record_action(
                    pk,
                    f"label corrected by {author}: {intent}" + (f", {sentiment}" if sentiment else ""),
                    now,
                    corrected_intent=intent,
                    corrected_sentiment=sentiment,
                    corrected_by=author[:150],
                    corrected_at=now,
                )
        self.message_user(
            request, f"{queryset.count()} message(s) labelled {intent}; the next training learns from them."
        )
        return None

    @admin.action(description="Reply with a template", permissions=["change"])
    def reply_with_template(self, request, queryset):
        form = ReplyForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "reply_with_template", "Reply with a template")
        template, now, author = form.cleaned_data["template"], timezone.now(), request.user.get_username()
        queued, refused = 0, []
        for pk in queryset.values_list("pk", flat=True):
            reply, outcome = reply_by_person(pk, template.pk, author, now)
            if reply is None:
                refused.append(f"message {pk}: {outcome}")
            else:
                queued += 1
        self.message_user(request, f"{queued} repl{'y' if queued == 1 else 'ies'} queued with {template.name!r}.")
        for refusal in refused:
            self.message_user(request, refusal, messages.WARNING)
        return None

    @admin.action(description="Close (nothing more to do)", permissions=["change"])
    def close(self, request, queryset) -> None:
        now, author = timezone.now(), request.user.get_username()
        with transaction.atomic():
            for pk in queryset.exclude(status=InboundStatus.CLOSED).values_list("pk", flat=True):
                record_action(pk, f"closed by {author}", now, status=InboundStatus.CLOSED, needs_person=False)
        self.message_user(request, "Closed.")
