"""Admin pages of the campaigns app."""

import json

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from campaigns.content.export import pieces_csv, pieces_json
from campaigns.models import ContentPiece, ContentStatus

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

    @admin.action(description="Export the selected pieces as CSV")
    def export_csv(self, request, queryset) -> HttpResponse:
        return _attachment(pieces_csv(queryset.select_related("segment")), "text/csv", "content.csv")

    @admin.action(description="Export the selected pieces as JSON")
    def export_json(self, request, queryset) -> HttpResponse:
        return _attachment(pieces_json(queryset.select_related("segment")), "application/json", "content.json")


def _attachment(content: str, content_type: str, filename: str) -> HttpResponse:
    return HttpResponse(
        content,
        content_type=f"{content_type}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
