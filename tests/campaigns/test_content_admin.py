"""The content admin: review pages, approve and reject actions, and CSV and JSON exports."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from pytest_django.asserts import assertContains

from campaigns.content import generate_content
from campaigns.models import ContentPiece, ContentStatus
from marketing.models import Segment, SegmentKind
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CHANGELIST = "admin:campaigns_contentpiece_changelist"
JSON_LD = {
    "@context": "https://schema.org",
    "@type": "Product",
    "name": "=HYPERLINK(1)",
    "sku": "P1",
    "offers": {
        "@type": "Offer",
        "price": "19.90",
        "priceCurrency": "EUR",
        "availability": "https://schema.org/InStock",
    },
}


def content_piece(channel: str, status: str = ContentStatus.DRAFT, **fields) -> ContentPiece:
    defaults = {"subject_key": "product:P1", "body": "Boots, 19.90 EUR", "generated_at": NOW, "data": {}}
    return ContentPiece.objects.create(channel=channel, status=status, **(defaults | fields))


def run_action(client, action: str, pieces: list[ContentPiece]):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [piece.pk for piece in pieces]})


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def meta_and_post() -> tuple[ContentPiece, ContentPiece]:
    segment = Segment.objects.create(name="Loyal buyers", kind=SegmentKind.STATIC)
    meta = content_piece(
        "meta",
        body="Warm, dry boots.",
        data={"title": "=HYPERLINK(1) | Shop", "description": "Warm, dry boots.", "json_ld": JSON_LD},
    )
    post = content_piece(
        "x", locale="de", segment=segment, scope_key=f"segment:{segment.pk}", body='Stiefel "neu"\nhttps://x.example'
    )
    return meta, post


def test_approve_sets_status_and_review_time_and_leaves_refused_pieces_alone(admin_client):
    draft, rejected = content_piece("x"), content_piece("facebook", ContentStatus.REJECTED)
    refused = content_piece(
        "instagram", ContentStatus.REFUSED, problem="Instagram allows 30 hashtags; this post has 31"
    )

    response = run_action(admin_client, "approve", [draft, rejected, refused])

    statuses = dict(ContentPiece.objects.values_list("channel", "status"))
    assert statuses == {"x": "approved", "facebook": "approved", "instagram": "refused"}
    assert ContentPiece.objects.filter(reviewed_at__isnull=False).count() == 2
    assert messages_of(response) == [
        ("info", "Approved 2 piece(s)."),
        ("warning", "1 refused piece(s) left as they are: fix the template or the data and generate again."),
    ]


def test_reject_sets_status_and_review_time(admin_client):
    draft = content_piece("x")

    run_action(admin_client, "reject", [draft])

    draft.refresh_from_db()
    assert draft.status == ContentStatus.REJECTED
    assert draft.reviewed_at is not None


def test_export_csv_has_the_columns_and_neutralises_formulas(admin_client, meta_and_post):
    meta, post = meta_and_post

    response = run_action(admin_client, "export_csv", [meta, post])

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="content.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["channel", "subject", "locale", "segment", "status", "body", "title", "description", "json_ld"],
        ["meta", "product:P1", "", "", "draft", "Warm, dry boots.", "'=HYPERLINK(1) | Shop", "Warm, dry boots.",
         json.dumps(JSON_LD, ensure_ascii=False, sort_keys=True)],
        ["x", "product:P1", "de", "Loyal buyers", "draft", 'Stiefel "neu"\nhttps://x.example', "", "", ""],
    ]  # fmt: skip


def test_export_json_keeps_json_ld_as_an_object(admin_client, meta_and_post):
    meta, post = meta_and_post

    response = run_action(admin_client, "export_json", [meta, post])

    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="content.json"'
    assert json.loads(response.content) == [
        {
            "channel": "meta", "subject": "product:P1", "locale": "", "segment": "", "status": "draft",
            "body": "Warm, dry boots.", "title": "=HYPERLINK(1) | Shop", "description": "Warm, dry boots.",
            "json_ld": JSON_LD,
        },
        {
            "channel": "x", "subject": "product:P1", "locale": "de", "segment": "Loyal buyers", "status": "draft",
            "body": 'Stiefel "neu"\nhttps://x.example', "title": "", "description": "", "json_ld": None,
        },
    ]  # fmt: skip


def test_the_list_shows_subject_channel_status_and_length_against_the_limit(admin_client):
    ProductFactory(sku="P1", name="Ski", category="")
    generate_content("products", channels=["x", "meta"], now=NOW)

    response = admin_client.get(reverse(CHANGELIST))

    assertContains(response, "Ski (P1)", count=2)
    assertContains(response, '<td class="field-length">38 / 280</td>', html=True)
    assertContains(response, '<td class="field-length">38</td>', html=True)
    assertContains(response, '<td class="field-channel">Search and Open Graph</td>', html=True)


def test_the_review_page_shows_the_body_and_the_data_pretty_printed_and_escaped(admin_client):
    ProductFactory(sku="P1", name="<b>Ski</b>", category="")
    generate_content("products", channels=["meta"], now=NOW)
    meta = ContentPiece.objects.get()

    response = admin_client.get(reverse("admin:campaigns_contentpiece_change", args=[meta.pk]))

    assertContains(response, "&lt;b&gt;Ski&lt;/b&gt; for 19.90 EUR at Kairos Demo Shop.")
    assertContains(response, "  &quot;json_ld&quot;: {\n    &quot;@context&quot;: &quot;https://schema.org&quot;,")
    assertContains(response, "<b>Ski</b>", count=0)


def test_pieces_cannot_be_added_by_hand(admin_client):
    response = admin_client.get(reverse("admin:campaigns_contentpiece_add"))

    assert response.status_code == 403
