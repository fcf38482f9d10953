"""Admin pages of the campaigns app: e-mail templates with preview and test send, broadcasts, messages, content."""

import json
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.clickjacking import xframe_options_sameorigin

from campaigns.content.export import pieces_csv, pieces_json
from campaigns.context import CONTEXT_DOCUMENTATION
from campaigns.delivery import queue_test_message
from campaigns.drafts import copy_as_draft, is_editable, launch_in_place
from campaigns.engine import CampaignError, enroll_by_hand, set_status
from campaigns.models import (
    Broadcast,
    BroadcastStatus,
    Campaign,
    CampaignStatus,
    ContentPiece,
    ContentStatus,
    EmailTemplate,
    Enrollment,
    Message,
    MessageStatus,
    Step,
    TemplateVariant,
    TemplateVersion,
)
from campaigns.preview import PREVIEW_POLICY, preview_html
from campaigns.rendering import RenderError, layout_names
from campaigns.results import campaign_results, results_table_html
from campaigns.schedules import sync_schedule
from campaigns.simulation import simulate
from campaigns.steps import StepError, steps
from campaigns.triggers import TriggerError, triggers
from campaigns.versions import lint_variant, publish_variant
from marketing.enqueue import enqueue_on_commit
from marketing.event_names import unknown_event_warnings
from marketing.models import Customer
from marketing.permissions import AdminActionPermissions

# --- SEO and social content ------------------------------------------------------------------


@admin.register(ContentPiece)
class ContentPieceAdmin(admin.ModelAdmin):
    list_display = ["subject", "channel", "locale", "status", "length", "generated_at"]
    list_filter = ["status", "channel", "locale", "segment"]
    search_fields = ["subject_key", "product__name", "category", "body"]
    list_select_related = ["product", "segment"]
    actions = ["approve", "reject", "export_csv", "export_json"]
    fieldsets = [
        (None, {"fields": ["subject", "channel", "locale", "segment", "status", "reviewed_at"]}),
        ("Output", {"fields": ["problem", "length", "body_view", "data_view"]}),
        ("Generated", {"fields": ["template_name", "generated_at"]}),
    ]
    readonly_fields = [
        "subject",
        "channel",
        "locale",
        "segment",
        "status",
        "reviewed_at",
        "problem",
        "length",
        "body_view",
        "data_view",
        "template_name",
        "generated_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # pieces come from generation, never from a form

    @admin.display(description="subject", ordering="subject_key")
    def subject(self, piece: ContentPiece) -> str:
        name = f"{piece.product.name} ({piece.product.sku})" if piece.product is not None else piece.subject_key
        return f"{name} for {piece.segment}" if piece.segment is not None else name

    @admin.display(description="length")
    def length(self, piece: ContentPiece) -> str:
        if "limit" in piece.data:
            return f"{piece.data['length']:,} / {piece.data['limit']:,}"
        return f"{len(piece.body):,}"

    @admin.display(description="body")
    def body_view(self, piece: ContentPiece) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', piece.body)

    @admin.display(description="data")
    def data_view(self, piece: ContentPiece) -> str:
        return format_html(
            '<pre style="white-space:pre-wrap">{}</pre>',
            json.dumps(piece.data, indent=2, ensure_ascii=False, sort_keys=True),
        )

    @admin.action(description="Approve the selected pieces", permissions=["change"])
    def approve(self, request, queryset) -> None:
        self._review(request, queryset, ContentStatus.APPROVED, "Approved")

    @admin.action(description="Reject the selected pieces", permissions=["change"])
    def reject(self, request, queryset) -> None:
        self._review(request, queryset, ContentStatus.REJECTED, "Rejected")

    def _review(self, request, queryset, status: ContentStatus, verb: str) -> None:
        # Refused output failed validation: it cannot be published, so it is not reviewed either.
        refused = queryset.filter(status=ContentStatus.REFUSED).count()
        reviewed = queryset.exclude(status=ContentStatus.REFUSED).update(status=status, reviewed_at=timezone.now())
        self.message_user(request, f"{verb} {reviewed} piece(s).")
        if refused:
            self.message_user(
                request,
                f"{refused} refused piece(s) left as they are: fix the template or the data and generate again.",
                messages.WARNING,
            )

    @admin.action(description="Export the selected pieces as CSV", permissions=["view"])
    def export_csv(self, request, queryset) -> HttpResponse:
        return _attachment(pieces_csv(queryset.select_related("segment")), "text/csv", "content.csv")

    @admin.action(description="Export the selected pieces as JSON", permissions=["view"])
    def export_json(self, request, queryset) -> HttpResponse:
        return _attachment(pieces_json(queryset.select_related("segment")), "application/json", "content.json")


def _attachment(content: str, content_type: str, filename: str) -> HttpResponse:
    return HttpResponse(
        content,
        content_type=f"{content_type}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- E-mail templates, broadcasts and messages ---------------------------------------------


class TemplateVariantForm(forms.ModelForm):
    class Meta:
        model = TemplateVariant
        fields = ["locale", "subject", "html", "text"]
        widgets = {
            "html": forms.Textarea(attrs={"rows": 18, "cols": 100, "style": "font-family: monospace"}),
            "text": forms.Textarea(attrs={"rows": 6, "cols": 100, "style": "font-family: monospace"}),
        }

    def clean(self) -> dict:
        """Refuse a variant that cannot render, naming the field and the line of each problem."""
        data = super().clean()
        if {"subject", "html"} <= data.keys():
            problems = lint_variant(data["subject"], data["html"], data.get("text", ""))
            for name, messages_ in problems.by_field().items():
                for message in messages_:
                    self.add_error(name, message)
        return data


class TemplateVariantInline(admin.StackedInline):
    model = TemplateVariant
    form = TemplateVariantForm
    extra = 0
    min_num = 1
    fields = ["locale", "subject", "html", "text", "version_shown"]
    readonly_fields = ["version_shown"]

    @admin.display(description="current version")
    def version_shown(self, variant: TemplateVariant) -> str:
        version = variant.current_version
        return f"v{version.number}, saved {version.created_at:%Y-%m-%d %H:%M}" if version else "not saved yet"


class TemplateVersionInline(admin.TabularInline):
    model = TemplateVersion
    fields = ["locale", "number", "subject", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    ordering = ["locale", "-number"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _context_help() -> str:
    rows = []
    for name, doc in CONTEXT_DOCUMENTATION.items():
        if isinstance(doc, dict):
            rows.extend(
                format_html("<li><code>{}.{}</code>: {}</li>", name, field, text) for field, text in doc.items()
            )
        else:
            rows.append(format_html("<li><code>{}</code>: {}</li>", name, doc))
    layouts = ", ".join(layout_names())
    return format_html(
        "<p>Templates are Jinja, rendered in a sandbox. Layouts you may extend, include or import from: {}.</p><ul>{}</ul>",
        layouts,
        mark_safe("".join(rows)),  # each row was escaped by format_html
    )


@admin.register(EmailTemplate)
class EmailTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "locales", "latest_version", "track_opens", "updated_at"]
    search_fields = ["name", "description"]
    inlines = [TemplateVariantInline, TemplateVersionInline]
    fields = ["name", "description", "from_email", "reply_to", "track_opens", "context_help"]
    readonly_fields = ["context_help"]
    change_form_template = "admin/campaigns/emailtemplate/change_form.html"

    @admin.display(description="what templates can use")
    def context_help(self, template: EmailTemplate | None = None) -> str:
        return _context_help()

    @admin.display(description="locales")
    def locales(self, template: EmailTemplate) -> str:
        return ", ".join(variant.locale or "default" for variant in template.variants.all())

    @admin.display(description="latest version")
    def latest_version(self, template: EmailTemplate) -> str:
        numbers = [variant.current_version.number for variant in template.variants.all() if variant.current_version]
        return f"v{max(numbers)}" if numbers else "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("variants__current_version")

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        for variant in form.instance.variants.all():
            version = publish_variant(variant)
            if version is not None:
                messages.info(request, f"Saved {variant} as version {version.number}.")

    def get_urls(self):
        urls = [
            path(
                "<int:template_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="campaigns_emailtemplate_preview",
            ),
            path(
                "<int:template_id>/preview/frame/",
                self.admin_site.admin_view(self.preview_frame_view),
                name="campaigns_emailtemplate_preview_frame",
            ),
        ]
        return urls + super().get_urls()

    def _preview_target(self, request, template_id: int):
        template = get_object_or_404(EmailTemplate, pk=template_id)
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        customer_id = request.GET.get("customer") or request.POST.get("customer") or ""
        # A real customer's rendering shows their data: it needs the right to see customers.
        if customer_id and not _may_view_customers(request):
            raise PermissionDenied
        customer = Customer.objects.filter(pk=customer_id).first() if customer_id.isdigit() else None
        return template, customer

    def preview_view(self, request, template_id: int) -> HttpResponse:
        """Show a template rendered for a chosen customer, in a sandboxed frame, with a test-send form."""
        template, customer = self._preview_target(request, template_id)
        form = TestSendForm(request.POST or None, initial={"to": request.user.email})
        if request.method == "POST":
            if not self.has_change_permission(request, template):
                raise PermissionDenied
            if form.is_valid():
                message = queue_test_message(template.pk, form.cleaned_data["to"], customer.pk if customer else None)
                messages.success(request, f"Test message {message.pk} queued for {message.to_email}.")
                return HttpResponseRedirect(request.get_full_path())
        query = urlencode({"customer": customer.pk}) if customer else ""
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview: {template.name}",
            "opts": self.model._meta,
            "original": template,
            "customer": customer,
            "form": form,
            "frame_url": reverse("admin:campaigns_emailtemplate_preview_frame", args=[template.pk])
            + (f"?{query}" if query else ""),
            "customers": Customer.objects.order_by("pk")[:50] if _may_view_customers(request) else [],
        }
        return TemplateResponse(request, "admin/campaigns/emailtemplate/preview.html", context)

    @method_decorator(xframe_options_sameorigin)
    def preview_frame_view(self, request, template_id: int) -> HttpResponse:
        """Serve the rendered e-mail as an opaque-origin document: no script in it can reach the admin."""
        template, customer = self._preview_target(request, template_id)
        try:
            document = preview_html(template, customer)
        except RenderError as error:
            document = format_html("<p>This template cannot render: {}</p>", str(error))
        response = HttpResponse(document)
        # The CSP sandbox gives the document a unique origin even if opened outside the frame.
        response["Content-Security-Policy"] = PREVIEW_POLICY
        response["Referrer-Policy"] = "no-referrer"
        return response


def _may_view_customers(request) -> bool:
    return request.user.has_perm("marketing.view_customer")


class TestSendForm(forms.Form):
    to = forms.EmailField(label="Send a test to")


@admin.register(Broadcast)
class BroadcastAdmin(AdminActionPermissions, admin.ModelAdmin):
    list_display = [
        "name", "template", "segment", "status", "pacing", "queued_at", "sent", "failed", "suppressed", "unknown",
    ]  # fmt: skip
    list_filter = ["status"]
    search_fields = ["name"]
    autocomplete_fields = ["template"]
    readonly_fields = ["status", "queued_at", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "template", "segment", "status", "queued_at", "created_at"]}),
        ("Frequency cap and quiet hours", {"fields": ["pacing_exemption"]}),
    ]
    actions = ["send_now"]

    @admin.display(description="cap and quiet hours")
    def pacing(self, broadcast: Broadcast) -> str:
        return f"ignored: {broadcast.pacing_exemption}" if broadcast.pacing_exemption else "respected"

    def get_queryset(self, request):
        counts = {
            f"n_{status}": Count("messages", filter=Q(messages__status=status)) for status in MessageStatus.values
        }
        return super().get_queryset(request).select_related("template", "segment").annotate(**counts)

    @admin.display(description="sent", ordering="n_sent")
    def sent(self, broadcast: Broadcast) -> int:
        return broadcast.n_sent

    @admin.display(description="failed", ordering="n_failed")
    def failed(self, broadcast: Broadcast) -> int:
        return broadcast.n_failed

    @admin.display(description="suppressed", ordering="n_suppressed")
    def suppressed(self, broadcast: Broadcast) -> int:
        return broadcast.n_suppressed

    @admin.display(description="unknown", ordering="n_unknown")
    def unknown(self, broadcast: Broadcast) -> int:
        return broadcast.n_unknown

    # Sending to a segment reaches customers as a launch does, so it needs the same approval.
    @admin.action(description="Send the selected draft broadcasts now", permissions=["launch"])
    def send_now(self, request, queryset) -> None:
        drafts = list(queryset.filter(status=BroadcastStatus.DRAFT))
        for broadcast in drafts:
            self.log_change(request, broadcast, "Sent now")
            enqueue_on_commit("campaigns.queue_broadcast", broadcast.pk)
        self.message_user(
            request, f"{len(drafts)} broadcast(s) queued; {queryset.count() - len(drafts)} were not drafts."
        )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "to_email",
        "kind",
        "status",
        "broadcast",
        "template",
        "attempts",
        "sent_at",
        "opened_at",
        "clicked_at",
    ]
    list_filter = ["status", "kind", "broadcast"]
    search_fields = ["to_email", "message_id", "subject"]
    list_select_related = ["broadcast", "template"]
    readonly_fields = [field.name for field in Message._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # messages are written by delivery, never by hand

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- Campaigns ------------------------------------------------------------------------------


class CampaignForm(forms.ModelForm):
    trigger_type = forms.ChoiceField(choices=triggers.choices)

    class Meta:
        model = Campaign
        fields = [
            "name", "description", "trigger_type", "trigger_config", "audience", "goal_event", "goal_days",
            "holdout_percent", "reentry", "reentry_cooldown_days", "frequency_cap", "frequency_window_hours", "quiet_hours",
        ]  # fmt: skip

    def clean(self) -> dict:
        """Check the trigger's config with its type, naming the key at fault."""
        data = super().clean()
        trigger_type = data.get("trigger_type")
        if trigger_type:
            try:
                data["trigger_config"] = triggers.get(trigger_type).clean(data.get("trigger_config") or {})
            except TriggerError as error:
                self.add_error("trigger_config", f"{error.field}: {error.message}")
        return data


# Positions at or above this are where a save parks the steps it moves (see StepFormSet).
MAX_STEP_POSITION = 999


class StepForm(forms.ModelForm):
    type = forms.ChoiceField(choices=steps.choices)
    position = forms.IntegerField(min_value=0, max_value=MAX_STEP_POSITION)

    class Meta:
        model = Step
        fields = ["position", "key", "type", "config"]


class StepFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        """Check every step's config with its type, against the keys of all the campaign's steps."""
        super().clean()
        forms_ = [form for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        keys = {form.cleaned_data["key"] for form in forms_ if form.cleaned_data.get("key")}
        for form in forms_:
            step_type = form.cleaned_data.get("type")
            if not step_type:
                continue
            try:
                form.cleaned_data["config"] = steps.get(step_type).clean(form.cleaned_data.get("config") or {}, keys)
                form.instance.config = form.cleaned_data["config"]
            except StepError as error:
                form.add_error("config", f"{error.field}: {error.message}")

    def save_existing_objects(self, commit: bool = True):
        """Save reordered steps without tripping the unique (campaign, position) constraint midway.

        Forms save one at a time, so moving step 2 to 3 while step 3 moves to 4 collides before both
        are written. Every step that moves or goes is first parked on a free position above
        MAX_STEP_POSITION; the saves then write final positions, which the formset checked are unique.
        """
        if commit:
            leaving = [
                form.instance.pk
                for form in self.initial_forms
                if form.instance.pk and (form in self.deleted_forms or "position" in form.changed_data)
            ]
            for offset, step_id in enumerate(leaving, start=1):
                Step.objects.filter(pk=step_id).update(position=MAX_STEP_POSITION + offset)
        return super().save_existing_objects(commit)


class StepInline(admin.TabularInline):
    model = Step
    form = StepForm
    formset = StepFormSet
    extra = 0
    ordering = ["position"]

    # A launched campaign's steps are what its customers walk through: change a draft copy instead.
    def has_add_permission(self, request, obj=None) -> bool:
        return is_editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_editable(obj) and super().has_delete_permission(request, obj)


def campaign_event_names(campaign: Campaign) -> list[str]:
    """Return the event names a saved campaign's trigger and steps wait for."""
    names = []
    if campaign.trigger_type in triggers:
        names += triggers.get(campaign.trigger_type).event_names(campaign.trigger_config or {})
    for step in campaign.steps.all():
        if step.type in steps:
            names += steps.get(step.type).event_names(step.config or {})
    return names


@admin.register(Campaign)
class CampaignAdmin(AdminActionPermissions, admin.ModelAdmin):
    form = CampaignForm
    inlines = [StepInline]
    list_display = ["name", "trigger_type", "status", "audience", "entered", "launched_at"]
    list_filter = ["status", "trigger_type"]
    search_fields = ["name", "description"]
    readonly_fields = ["status", "launched_at", "results"]
    actions = ["launch_selected", "pause_selected", "archive_selected", "copy_selected"]
    change_form_template = "admin/campaigns/campaign/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("audience").annotate(n_entered=Count("enrollments"))

    @admin.display(description="entered", ordering="n_entered")
    def entered(self, campaign: Campaign) -> int:
        return campaign.n_entered

    @admin.display(description="results")
    def results(self, campaign: Campaign) -> str:
        if campaign.pk is None:
            return "—"
        return results_table_html(campaign_results(campaign))

    def has_change_permission(self, request, obj=None) -> bool:
        """Only drafts change; a launched campaign is copied into a draft that is launched in its place."""
        return is_editable(obj) and super().has_change_permission(request, obj)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        if form.instance.status == CampaignStatus.ACTIVE:
            sync_schedule(form.instance)  # an active recurring campaign's new crontab reaches beat at once
        for warning in unknown_event_warnings(campaign_event_names(form.instance)):
            self.message_user(request, warning, messages.WARNING)

    def _set_status(self, request, queryset, status: str, verb: str) -> None:
        if not self.has_launch_permission(request):
            self.message_user(
                request, f"Only an approver (permission “launch campaigns”) may {verb} campaigns.", messages.ERROR
            )
            return
        done = 0
        for campaign in queryset:
            try:
                launch_in_place(campaign) if status == CampaignStatus.ACTIVE else set_status(campaign, status)
                # The audit trail of who launched what.
                self.log_change(request, campaign, f"{verb}ed (status {status})")
                done += 1
            except CampaignError as error:
                self.message_user(request, f"{campaign}: {error}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} campaign(s) {verb}ed.")

    @admin.action(
        description="Launch the selected campaigns (a draft copy replaces its original)", permissions=["launch"]
    )
    def launch_selected(self, request, queryset) -> None:
        self._set_status(request, queryset, CampaignStatus.ACTIVE, "launch")

    @admin.action(description="Pause the selected campaigns", permissions=["launch"])
    def pause_selected(self, request, queryset) -> None:
        self._set_status(request, queryset, CampaignStatus.PAUSED, "paus")

    @admin.action(description="Archive the selected campaigns", permissions=["launch"])
    def archive_selected(self, request, queryset) -> None:
        self._set_status(request, queryset, CampaignStatus.ARCHIVED, "archiv")

    @admin.action(description="Copy into an editable draft (launch it to replace the original)", permissions=["add"])
    def copy_selected(self, request, queryset) -> None:
        for campaign in queryset:
            copy = copy_as_draft(campaign)
            self.log_addition(request, copy, f"Copied from {campaign} (#{campaign.pk})")
            self.message_user(
                request, f"{copy} created as a draft; an approver's launch puts it in place of {campaign}."
            )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:campaign_id>/enroll/", view(self.enroll_view), name="campaigns_campaign_enroll"),
            path("<int:campaign_id>/simulate/", view(self.simulate_view), name="campaigns_campaign_simulate"),
        ] + super().get_urls()

    def enroll_view(self, request, campaign_id: int) -> HttpResponse:
        """Enroll customers by their shop ids (the manual trigger, or a test of any campaign)."""
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        # Enrolling puts customers on the campaign's sends: the approval a launch needs.
        if not self.has_launch_permission(request):
            raise PermissionDenied
        form = EnrollForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            ids = form.cleaned_data["external_ids"]
            found = dict(Customer.objects.filter(external_id__in=ids).values_list("external_id", "pk"))
            missing = [external_id for external_id in ids if external_id not in found]
            count = enroll_by_hand(campaign, list(found.values()))
            self.log_change(request, campaign, f"Enrolled {count} by hand")
            self.message_user(
                request, f"{count} enrolled" + (f"; unknown ids: {', '.join(missing[:20])}" if missing else "") + "."
            )
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        context = {**self.admin_site.each_context(request), "title": f"Enroll in {campaign}", "opts": self.model._meta,
                   "original": campaign, "form": form, "action": "enroll"}  # fmt: skip
        return TemplateResponse(request, "admin/campaigns/campaign/tool.html", context)

    def simulate_view(self, request, campaign_id: int) -> HttpResponse:
        """Replay the last N days of events and segment changes through the campaign, sending nothing."""
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        # A replay of up to a year costs a worker minutes: those who build campaigns may run it, by POST.
        if not super().has_change_permission(request):
            raise PermissionDenied
        form = SimulateForm(request.POST or None)
        report = error = None
        if request.method == "POST" and form.is_valid():
            try:
                report = simulate(campaign, form.cleaned_data["days"])
            except CampaignError as problem:
                error = str(problem)
        context = {**self.admin_site.each_context(request), "title": f"Simulate {campaign}", "opts": self.model._meta,
                   "original": campaign, "form": form, "action": "simulate", "report": report, "error": error}  # fmt: skip
        return TemplateResponse(request, "admin/campaigns/campaign/tool.html", context)


class EnrollForm(forms.Form):
    external_ids = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}), help_text="The shop's customer ids, one per line."
    )

    def clean_external_ids(self) -> list[str]:
        ids = [line.strip() for line in self.cleaned_data["external_ids"].splitlines() if line.strip()]
        if not ids:
            raise forms.ValidationError("Give at least one customer id.")
        return ids


class SimulateForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=365, initial=30, help_text="Replay this many days up to now.")


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["pk", "campaign", "customer", "state", "step", "next_run_at", "entered_at", "variant"]
    list_filter = ["state", "campaign"]
    search_fields = ["customer__external_id", "customer__email"]
    list_select_related = ["campaign", "customer", "step"]
    readonly_fields = [field.name for field in Enrollment._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # enrollments come from triggers and the enroll page

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# The conversation inbox (campaigns/inbox.py) registers itself; it lives apart to keep this module in bounds.
from campaigns import inbox  # noqa: E402,F401
