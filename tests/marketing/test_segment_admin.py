"""The segment admin: rule problems shown next to their key, previews that save nothing, the size chart, actions."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from marketing.models import (
    Consent,
    Match,
    Segment,
    SegmentChange,
    SegmentChangeKind,
    SegmentKind,
    SegmentMembership,
    SegmentRule,
    SegmentSize,
)
from marketing.segments.refresh import refresh_segment
from marketing.segments.registry import rule_types
from tests.factories import BASE_TIME, CustomerFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:marketing_segment_add")
LIST_URL = reverse("admin:marketing_segment_changelist")


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "a-long-passphrase")
    client.force_login(user)
    return client


def change_url(segment: Segment) -> str:
    return reverse("admin:marketing_segment_change", args=[segment.pk])


def make_segment(name: str, *rules: tuple[str, dict], match: str = Match.ALL, kind: str = SegmentKind.DYNAMIC) -> Segment:
    segment = Segment.objects.create(name=name, match=match, kind=kind)
    for position, (type_, config) in enumerate(rules):
        SegmentRule.objects.create(segment=segment, type=type_, config=config, position=position)
    return segment


def form_data(name: str, rules: list[dict], segment: Segment | None = None, match: str = Match.ALL, **extra) -> dict:
    """Return the POST body of the segment form: its fields, then one inline row per rule dict."""
    existing = list(segment.rules.all()) if segment else []
    data = {
        "name": name, "description": "", "kind": SegmentKind.DYNAMIC, "match": match, "refresh_every_minutes": "60",
        "rules-TOTAL_FORMS": str(max(len(rules), len(existing))), "rules-INITIAL_FORMS": str(len(existing)),
        "rules-MIN_NUM_FORMS": "0", "rules-MAX_NUM_FORMS": "1000",
    }
    for index, rule in enumerate(rules):
        prefix = f"rules-{index}-"
        data[prefix + "type"] = rule["type"]
        data[prefix + "config"] = json.dumps(rule["config"]) if not isinstance(rule["config"], str) else rule["config"]
        data[prefix + "position"] = str(rule.get("position", index))
        if rule.get("negate"):
            data[prefix + "negate"] = "on"
        if rule.get("delete"):
            data[prefix + "DELETE"] = "on"
        if index < len(existing):
            data[prefix + "id"] = str(existing[index].pk)
            data[prefix + "segment"] = str(segment.pk)
    data.update(extra)
    return data


def rule_errors(response) -> list[dict]:
    (inline,) = response.context["inline_admin_formsets"]
    return [dict(form.errors) for form in inline.formset.forms]


def known_types() -> str:
    return ", ".join(key for key, _ in rule_types.choices())


def test_the_builtin_rule_types_are_offered():
    assert {"attribute", "purchase", "bought", "event", "segment", "consent"} <= {key for key, _ in rule_types.choices()}


def test_the_add_page_offers_every_rule_type_its_example_and_a_preview_button(staff):
    response = staff.get(ADD_URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert '<input type="submit" value="Preview" name="_preview"' in body
    assert '<option value="consent">Consent or suppression</option>' in body
    assert [row[0] for row in response.context["rule_examples"]] == [key for key, _ in rule_types.choices()]
    assert "<code>{&quot;field&quot;: &quot;country&quot;, &quot;op&quot;: &quot;in&quot;, &quot;value&quot;: [&quot;DE&quot;, &quot;AT&quot;]}</code>" in body


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        (
            {"type": "attribute", "config": {"field": "country", "op": "in", "value": "Germany"}},
            "value: in takes a non-empty list of text values",
        ),
        (
            {"type": "attribute", "config": {"field": "country", "op": "in", "value": ["DE"], "colour": "red"}},
            "colour: is not a setting of this rule; settings: attribute_type, field, op, value",
        ),
        (
            {"type": "attribute", "config": {"field": "password", "op": "equals", "value": "x"}},
            "field: 'password' is not a field; fields: email, first_name, last_name, locale, timezone, country, "
            "city, gender, birth_date, created_at, attributes.<key>",
        ),
        (
            {"type": "consent", "config": {"state": "maybe"}},
            "state: 'maybe' is not one of opted_in, opted_out, unknown, suppressed, mailable",
        ),
        (
            {"type": "segment", "config": {"segment": 999_999}},
            "segment: there is no segment with id 999999",
        ),
    ],
)
def test_a_bad_rule_is_shown_next_to_its_config_and_nothing_is_saved(staff, rule, error):
    response = staff.post(ADD_URL, form_data("Germans", [rule]))

    assert response.status_code == 200
    assert rule_errors(response) == [{"config": [error]}]
    assert error in response.content.decode().replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">")
    assert Segment.objects.count() == 0
    assert SegmentRule.objects.count() == 0


def test_config_that_is_not_a_json_object_is_refused(staff):
    response = staff.post(ADD_URL, form_data("Germans", [{"type": "consent", "config": '["mailable"]'}]))

    assert rule_errors(response) == [{"config": ['Enter a JSON object, e.g. {"state": "mailable"}.']}]
    assert Segment.objects.count() == 0


def test_only_the_bad_rule_of_several_carries_the_error_and_an_edit_changes_nothing(staff):
    segment = make_segment("Germans", ("attribute", {"field": "country", "op": "in", "value": ["DE"]}))
    rules = [
        {"type": "attribute", "config": {"field": "country", "op": "in", "value": ["DE", "AT"]}},
        {"type": "purchase", "config": {"measure": "order_count", "op": "at_least", "value": -1}},
    ]

    response = staff.post(change_url(segment), form_data("Germans and Austrians", rules, segment))

    assert rule_errors(response) == [{}, {"config": ["value: must be a number of at least 0"]}]
    segment.refresh_from_db()
    assert segment.name == "Germans"
    assert list(segment.rules.values_list("type", "config")) == [
        ("attribute", {"field": "country", "op": "in", "value": ["DE"]})
    ]


def test_an_unknown_rule_type_is_refused_on_the_type_field(staff):
    response = staff.post(ADD_URL, form_data("Loyal", [{"type": "loyalty", "config": {"tier": "gold"}}]))

    assert rule_errors(response) == [{"type": [f"unknown rule type 'loyalty'; known types: {known_types()}"]}]
    assert Segment.objects.count() == 0
    assert SegmentRule.objects.count() == 0


def test_a_cycle_through_nested_segments_is_refused(staff):
    buyers = make_segment("Buyers", ("consent", {"state": "mailable"}))
    vips = make_segment("VIPs", ("segment", {"segment": buyers.pk}))

    response = staff.post(change_url(buyers), form_data("Buyers", [{"type": "segment", "config": {"segment": vips.pk}}], buyers))

    assert rule_errors(response) == [{"config": ["segment: would make a cycle: Buyers → VIPs → Buyers"]}]
    assert list(buyers.rules.values_list("type", "config")) == [("consent", {"state": "mailable"})]
    assert SegmentRule.objects.count() == 2


def test_a_segment_that_uses_itself_is_refused(staff):
    buyers = make_segment("Buyers", ("consent", {"state": "mailable"}))

    response = staff.post(change_url(buyers), form_data("Buyers", [{"type": "segment", "config": {"segment": buyers.pk}}], buyers))

    assert rule_errors(response) == [{"config": ["segment: would make a cycle: Buyers → Buyers"]}]
    assert list(buyers.rules.values_list("type", "config")) == [("consent", {"state": "mailable"})]


def test_a_valid_save_stores_the_cleaned_configs(staff):
    rules = [
        {"type": "attribute", "config": {"field": "attributes.tier", "op": "equals", "value": "gold"}},
        {"type": "attribute", "config": {"field": "birth_date", "op": "before", "value": "20000131"}, "negate": True},
        {"type": "consent", "config": {"state": "mailable"}},
    ]

    response = staff.post(ADD_URL, form_data("Gold", rules, match=Match.ANY))

    assert response.status_code == 302
    segment = Segment.objects.get()
    assert (segment.name, segment.match, segment.kind) == ("Gold", Match.ANY, SegmentKind.DYNAMIC)
    assert list(segment.rules.values_list("type", "config", "negate", "position")) == [
        ("attribute", {"field": "attributes.tier", "attribute_type": "text", "op": "equals", "value": "gold"}, False, 0),
        ("attribute", {"field": "birth_date", "op": "before", "value": "2000-01-31"}, True, 1),
        ("consent", {"state": "mailable"}, False, 2),
    ]


def test_a_rule_can_be_deleted_and_a_nested_segment_saved(staff):
    buyers = make_segment("Buyers", ("consent", {"state": "mailable"}))
    vips = make_segment("VIPs", ("consent", {"state": "opted_in"}), ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    rules = [
        {"type": "segment", "config": {"segment": buyers.pk}},
        {"type": "attribute", "config": {"field": "country", "op": "equals", "value": "DE"}, "delete": True},
    ]

    response = staff.post(change_url(vips), form_data("VIPs", rules, vips))

    assert response.status_code == 302
    assert list(vips.rules.values_list("type", "config")) == [("segment", {"segment": buyers.pk})]


@pytest.fixture
def audience():
    """Two Germans, an Austrian and a French customer, with fixed ids."""
    return {
        "de1": CustomerFactory(external_id="DE-1", email="de1@example.com", first_name="Anna", last_name="Abel", country="DE"),
        "de2": CustomerFactory(external_id="DE-2", email="de2@example.com", first_name="Bert", last_name="Brandt", country="DE"),
        "at": CustomerFactory(external_id="AT-1", email="at1@example.com", first_name="Cora", last_name="Chen", country="AT"),
        "fr": CustomerFactory(external_id="FR-1", email="fr1@example.com", first_name="Dora", last_name="Duval", country="FR"),
    }


def test_preview_shows_exact_counts_against_the_stored_membership_and_saves_nothing(staff, audience):
    germans = make_segment("Germans", ("attribute", {"field": "country", "op": "in", "value": ["DE"]}))
    refresh_segment(germans.pk)
    germans.refresh_from_db()
    rules = [
        {"type": "attribute", "config": {"field": "country", "op": "equals", "value": "AT"}},
        {"type": "attribute", "config": {"field": "first_name", "op": "equals", "value": "Anna"}},
    ]

    response = staff.post(change_url(germans), form_data("Renamed", rules, germans, match=Match.ANY, _preview="Preview"))

    assert response.status_code == 200
    shown = response.context["preview"]
    assert (shown.count, shown.entering, shown.leaving) == (2, 1, 1)
    assert [row["external_id"] for row in shown.sample] == ["DE-1", "AT-1"]
    body = response.content.decode()
    assert '<strong id="preview-count">2</strong>' in body
    assert '<strong id="preview-entering">1</strong>' in body
    assert '<strong id="preview-leaving">1</strong>' in body
    assert body.count('<tr class="preview-sample">') == 2
    assert '<td>at1@example.com</td>\n        <td>Cora Chen</td>\n        <td>AT</td>' in body
    assert 'class="errornote"' not in body
    # The form shows what was typed, and nothing of it was stored.
    assert 'value="Renamed"' in body
    after = Segment.objects.get(pk=germans.pk)
    assert (after.name, after.match, after.version, after.size) == ("Germans", Match.ALL, germans.version, 2)
    assert list(after.rules.values_list("type", "config")) == [("attribute", {"field": "country", "op": "in", "value": ["DE"]})]
    assert set(SegmentMembership.objects.filter(segment=after).values_list("customer__external_id", flat=True)) == {"DE-1", "DE-2"}
    assert SegmentSize.objects.count() == 1
    assert Segment.objects.count() == 1


def test_preview_of_a_new_segment_counts_everyone_as_entering_and_saves_nothing(staff, audience):
    rules = [{"type": "attribute", "config": {"field": "country", "op": "in", "value": ["DE", "AT"]}}]

    response = staff.post(ADD_URL, form_data("DACH", rules, _preview="Preview"))

    shown = response.context["preview"]
    assert (shown.count, shown.entering, shown.leaving) == (3, 3, 0)
    assert [row["external_id"] for row in shown.sample] == ["DE-1", "DE-2", "AT-1"]
    assert 'id="preview-entering"' not in response.content.decode()
    assert Segment.objects.count() == 0
    assert SegmentRule.objects.count() == 0


def test_preview_with_a_bad_rule_shows_the_error_instead(staff, audience):
    rules = [{"type": "consent", "config": {"state": "maybe"}}]

    response = staff.post(ADD_URL, form_data("Unsure", rules, _preview="Preview"))

    assert "preview" not in response.context
    assert rule_errors(response) == [
        {"config": ["state: 'maybe' is not one of opted_in, opted_out, unknown, suppressed, mailable"]}
    ]
    assert 'class="errornote"' in response.content.decode()
    assert Segment.objects.count() == 0


def test_the_changelist_shows_state_and_shortened_errors(staff):
    broken = make_segment("Broken")
    Segment.objects.filter(pk=broken.pk).update(size=7, last_error="OperationalError: " + "x" * 100)
    make_segment("Fine")

    response = staff.get(LIST_URL, {"kind__exact": SegmentKind.DYNAMIC, "q": "Bro"})

    assert [segment.pk for segment in response.context["cl"].result_list] == [broken.pk]
    body = response.content.decode()
    assert '<td class="field-errors">OperationalError: ' + "x" * 41 + "…</td>" in body
    assert '<td class="field-size">7</td>' in body


def points_of(body: str) -> list[str]:
    (points,) = re.findall(r'<polyline points="([^"]*)">', body)
    return points.split()


def test_the_page_charts_the_size_after_each_refresh(staff):
    segment = make_segment("Germans")
    for hours, size in [(0, 10), (1, 20), (2, 40)]:
        SegmentSize.objects.create(segment=segment, at=BASE_TIME + timedelta(hours=hours), size=size, entered=size, exited=0)

    response = staff.get(change_url(segment))

    body = response.content.decode()
    assert body.count('<svg class="segment-chart"') == 1
    assert points_of(body) == ["8.0,116.0", "320.0,80.0", "632.0,8.0"]
    assert body.count("<circle ") == 3


def test_the_chart_keeps_the_last_90_refreshes(staff):
    segment = make_segment("Germans")
    SegmentSize.objects.bulk_create(
        SegmentSize(segment=segment, at=BASE_TIME + timedelta(hours=hours), size=hours, entered=1, exited=0)
        for hours in range(95)
    )

    response = staff.get(change_url(segment))

    chart = response.context["size_chart"]
    assert [point.size for point in chart.points] == list(range(5, 95))
    assert len(points_of(response.content.decode())) == 90


def test_a_segment_never_refreshed_has_no_chart(staff):
    segment = make_segment("Germans")

    response = staff.get(change_url(segment))

    body = response.content.decode()
    assert 'class="segment-chart"' not in body
    assert "Not refreshed yet." in body
    assert "No one has entered or left yet." in body


def test_the_page_lists_the_last_20_entries_and_exits(staff):
    segment = make_segment("Germans")
    customers = CustomerFactory.create_batch(25)
    SegmentChange.objects.bulk_create(
        SegmentChange(
            segment=segment, customer=customer, version=1, at=BASE_TIME + timedelta(minutes=index),
            kind=SegmentChangeKind.EXITED if index % 2 else SegmentChangeKind.ENTERED,
        )
        for index, customer in enumerate(customers)
    )

    response = staff.get(change_url(segment))

    shown = list(response.context["recent_changes"])
    assert [change.customer_id for change in shown] == [customer.pk for customer in reversed(customers[5:])]
    assert response.content.decode().count('<tr class="segment-change">') == 20
    assert f"{customers[24]}</a></td>\n        <td>Entered</td>\n        <td>2024-01-01 09:24</td>" in response.content.decode()


def test_refresh_now_enqueues_after_commit_and_the_refresh_stores_membership(staff, audience, django_capture_on_commit_callbacks):
    germans = make_segment("Germans", ("attribute", {"field": "country", "op": "equals", "value": "DE"}))
    listing = make_segment("A list", kind=SegmentKind.STATIC)

    with django_capture_on_commit_callbacks(execute=False) as pending:
        queued = staff.post(LIST_URL, {"action": "refresh_now", "_selected_action": [germans.pk, listing.pk]}, follow=True)
    assert [str(message) for message in queued.context["messages"]] == [
        "Refresh queued for 1 segment(s).", "1 static list(s) skipped: they are not refreshed.",
    ]
    assert len(pending) == 1
    assert SegmentMembership.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        staff.post(LIST_URL, {"action": "refresh_now", "_selected_action": [germans.pk, listing.pk]})

    members = SegmentMembership.objects.filter(segment=germans).values_list("customer__external_id", flat=True)
    assert sorted(members) == ["DE-1", "DE-2"]
    germans.refresh_from_db()
    assert (germans.size, germans.version) == (2, 1)
    assert SegmentMembership.objects.filter(segment=listing).count() == 0


def test_freeze_copies_the_members_into_a_static_list(staff, audience):
    germans = make_segment("Germans", ("consent", {"state": "opted_in"}))
    audience["fr"].consent_state = Consent.OPTED_OUT
    audience["fr"].save()
    refresh_segment(germans.pk)

    response = staff.post(LIST_URL, {"action": "freeze", "_selected_action": [germans.pk]}, follow=True)

    frozen = Segment.objects.exclude(pk=germans.pk).get()
    stamp = timezone.localtime(frozen.last_calculated_at)
    assert frozen.name == f"Germans (frozen {stamp:%Y-%m-%d %H:%M})"
    assert (frozen.kind, frozen.size, frozen.rules.count()) == (SegmentKind.STATIC, 3, 0)
    members = SegmentMembership.objects.filter(segment=frozen).values_list("customer__external_id", flat=True)
    assert sorted(members) == ["AT-1", "DE-1", "DE-2"]
    assert [str(message) for message in response.context["messages"]] == [f"Froze Germans as {frozen.name} (3 customers)."]



def test_saving_a_segments_rules_refreshes_it_once_committed(staff, django_capture_on_commit_callbacks):
    for country in ("DE", "DE", "FR"):
        CustomerFactory(country=country)
    rules = [{"type": "attribute", "config": {"field": "country", "op": "equals", "value": "DE"}}]

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(ADD_URL, form_data("Germans", rules))

    assert response.status_code == 302
    segment = Segment.objects.get()
    assert (segment.size, segment.version, segment.last_error) == (2, 1, "")
    assert segment.last_calculated_at is not None


def test_the_changelist_shows_a_failing_segments_next_try(staff):
    broken = make_segment("Broken")
    retry = datetime(2026, 3, 2, 10, 4, tzinfo=UTC)
    Segment.objects.filter(pk=broken.pk).update(last_error="RuleError: bad", errors_calculating=3, retry_at=retry)

    body = staff.get(LIST_URL).content.decode()

    assert re.findall(r'<td class="field-next_try nowrap">([^<]*)</td>', body) == ["March 2, 2026, 10:04 a.m."]
