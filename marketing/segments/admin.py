"""The segment admin: rules edited as data, checked at save time, previewed before they are saved.

A marketer sees every problem next to the rule and the config key that caused it, can preview who
the rules would select without saving anything, and follows the segment's size over time.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.text import Truncator

from marketing.enqueue import enqueue_on_commit
from marketing.event_names import unknown_event_warnings
from marketing.models import Segment, SegmentChange, SegmentKind, SegmentRule, SegmentSize
from marketing.segments.compiler import RuleSpec, check_rules
from marketing.segments.refresh import freeze_segment, preview
from marketing.segments.registry import rule_types

PREVIEW = "_preview"  # name of the submit button that previews instead of saving
CHART_POINTS = 90
RECENT_CHANGES = 20


def rule_examples() -> list[tuple[str, str, str]]:
    """Return (key, label, example as JSON) for every registered rule type."""
    return [(key, label, json.dumps(rule_types.get(key).example)) for key, label in rule_types.choices()]


class SegmentRuleForm(forms.ModelForm):
    # Any text is accepted here so that an unknown type is refused by check_rules, with its list
    # of known types, rather than by a bare "not one of the choices".
    type = forms.CharField(widget=forms.Select)

    class Meta:
        model = SegmentRule
        fields = ["type", "config", "negate", "position"]
        widgets = {"config": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read per form, not at import: rule types register on import, some only in tests.
        choices = [("", "---------"), *rule_types.choices()]
        if self.instance.type and self.instance.type not in rule_types:
            choices.append((self.instance.type, f"{self.instance.type} (unknown)"))
        self.fields["type"].widget.choices = choices
        self.fields["config"].help_text = "Examples: " + "; ".join(
            f"{key}: {example}" for key, _, example in rule_examples()
        )

    def clean_config(self) -> dict[str, Any]:
        config = self.cleaned_data["config"]
        if config is None:
            return {}
        if not isinstance(config, dict):
            raise forms.ValidationError('Enter a JSON object, e.g. {"state": "mailable"}.')
        return config


class SegmentRuleFormSet(BaseInlineFormSet):
    """Checks all the rules together, as the segment will use them, and keeps their cleaned configs."""

    specs: list[RuleSpec] | None = None  # the cleaned rules, once every form is valid

    def clean(self) -> None:
        super().clean()
        live = [form for form in self.forms if not form.cleaned_data.get("DELETE")]
        kept = [form for form in live if form.is_valid() and form.cleaned_data]  # an untouched extra row has none
        specs = [
            RuleSpec(form.cleaned_data["type"], form.cleaned_data["config"], form.cleaned_data["negate"])
            for form in kept
        ]
        cleaned, problems = check_rules(self.instance.pk or None, specs)
        for problem in problems:
            field = "type" if problem.field == "type" else "config"
            message = problem.message if field == "type" else f"{problem.field}: {problem.message}"
            kept[problem.index].add_error(field, message)
        if problems or not all(form.is_valid() for form in live):
            return
        for form, spec in zip(kept, cleaned, strict=True):
            # The instance was built from the raw config before this ran; save the normalised one.
            form.cleaned_data["config"] = form.instance.config = spec.config
        self.specs = cleaned


class SegmentRuleInline(admin.TabularInline):
    model = SegmentRule
    form = SegmentRuleForm
    formset = SegmentRuleFormSet
    fields = ["type", "config", "negate", "position"]
    extra = 1


class SegmentForm(forms.ModelForm):
    previewing = False  # set per request by SegmentAdmin.get_form

    def is_valid(self) -> bool:
        # Django's change view saves whatever validates. A preview must validate without saving,
        # so it reports the form as unsaveable; no error was added, so none is shown, and
        # SegmentAdmin.render_change_form adds the preview instead.
        return super().is_valid() and not self.previewing


@dataclass(frozen=True)
class ChartPoint:
    at: datetime
    size: int
    x: float
    y: float


@dataclass(frozen=True)
class SizeChart:
    width: int
    height: int
    points: list[ChartPoint]
    top: int  # the size the top of the chart stands for

    @property
    def polyline(self) -> str:
        return " ".join(f"{point.x:.1f},{point.y:.1f}" for point in self.points)


def size_chart(sizes: list[tuple[datetime, int]], width: int = 640, height: int = 160, margin: int = 8) -> SizeChart:
    """Place (time, size) points on an SVG canvas: time along x, size up from zero along y."""
    top = max([size for _, size in sizes] + [1])
    first, last = (sizes[0][0], sizes[-1][0]) if sizes else (None, None)
    span = (last - first).total_seconds() if sizes else 0
    inner_width, inner_height = width - 2 * margin, height - 2 * margin
    points = []
    for at, size in sizes:
        share = (at - first).total_seconds() / span if span else 0.5
        points.append(ChartPoint(at, size, margin + share * inner_width, margin + inner_height * (1 - size / top)))
    return SizeChart(width, height, points, top)


def enqueue_refresh(segment_id: int) -> None:
    """Refresh the segment in a worker once the current transaction has committed."""
    enqueue_on_commit("marketing.refresh_segment", segment_id)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["name", "kind", "match", "size", "last_calculated_at", "errors", "next_try"]
    list_filter = ["kind"]
    search_fields = ["name"]
    readonly_fields = ["size", "version", "last_calculated_at", "errors_calculating", "last_error", "retry_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "kind", "match", "refresh_every_minutes"]}),
        ("Recalculation", {"fields": readonly_fields}),
    ]
    inlines = [SegmentRuleInline]
    actions = ["refresh_now", "freeze"]

    @admin.display(description="errors")
    def errors(self, segment: Segment) -> str:
        return Truncator(segment.last_error).chars(60)

    @admin.display(description="next try", ordering="retry_at")
    def next_try(self, segment: Segment):
        return segment.retry_at or "—"

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        """Save the rules, then refresh the segment once they are committed: its size is never a stale 0."""
        super().save_related(request, form, formsets, change)
        names = [
            name
            for rule in form.instance.rules.all()
            if rule.type in rule_types
            for name in rule_types.get(rule.type).event_names(rule.config or {})
        ]
        for warning in unknown_event_warnings(names):
            self.message_user(request, warning, messages.WARNING)
        if form.instance.kind == SegmentKind.DYNAMIC:
            enqueue_refresh(form.instance.pk)
            self.message_user(request, f"Refresh of {form.instance} queued; its size shows once it has run.")

    def get_form(self, request: HttpRequest, obj: Segment | None = None, change: bool = False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        form_class.previewing = request.method == "POST" and PREVIEW in request.POST
        return form_class

    def render_change_form(self, request: HttpRequest, context: dict, add: bool = False, change: bool = False,
                           form_url: str = "", obj: Segment | None = None) -> HttpResponse:
        form = context["adminform"].form
        rules = next(
            (inline.formset for inline in context["inline_admin_formsets"]
             if isinstance(inline.formset, SegmentRuleFormSet)),
            None,
        )
        if form.previewing and rules is not None and not form.errors and rules.is_valid():
            context["preview"] = preview(form.cleaned_data["match"], rules.specs, obj.pk if obj else None)
        context["rule_examples"] = rule_examples()
        if obj is not None:
            recent_sizes = SegmentSize.objects.filter(segment=obj).order_by("-at").values_list("at", "size")
            context["size_chart"] = size_chart(list(reversed(recent_sizes[:CHART_POINTS])))
            context["recent_changes"] = (
                SegmentChange.objects.filter(segment=obj).select_related("customer")[:RECENT_CHANGES]
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Refresh now", permissions=["change"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        dynamic = list(queryset.filter(kind=SegmentKind.DYNAMIC).values_list("pk", flat=True))
        for segment_id in dynamic:
            enqueue_refresh(segment_id)
        self.message_user(request, f"Refresh queued for {len(dynamic)} segment(s).")
        skipped = queryset.count() - len(dynamic)
        if skipped:
            self.message_user(request, f"{skipped} static list(s) skipped: they are not refreshed.", messages.WARNING)

    @admin.action(description="Freeze as a static list", permissions=["add"])
    def freeze(self, request: HttpRequest, queryset: QuerySet) -> None:
        now = timezone.now()
        suffix = f" (frozen {timezone.localtime(now):%Y-%m-%d %H:%M})"
        max_length = Segment._meta.get_field("name").max_length
        for segment in queryset:
            name = f"{segment.name[: max_length - len(suffix)]}{suffix}"
            if Segment.objects.filter(name=name).exists():
                self.message_user(request, f"{name} exists already; {segment} was not frozen again.", messages.WARNING)
                continue
            frozen = freeze_segment(segment, name, now)
            self.message_user(request, f"Froze {segment} as {frozen} ({frozen.size} customers).")
