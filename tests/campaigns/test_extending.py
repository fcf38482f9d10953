"""The worked example of docs/extending.md: the `price_dropped` trigger and the `tag_customer` step."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from campaigns.engine import CampaignError, advance, launch, poll_triggers
from campaigns.examples.price_drop import steps as price_drop_steps  # noqa: F401 - registers tag_customer
from campaigns.examples.price_drop import triggers as price_drop_triggers  # noqa: F401 - registers price_dropped
from campaigns.models import Campaign, CampaignStatus, Enrollment, EnrollmentState, Message, Step
from campaigns.steps import StepContext, StepError, StepResult, StepType, steps
from campaigns.triggers import Candidate, TriggerError, triggers
from campaigns.versions import save_template
from marketing.models import Customer, Product
from tests.factories import CustomerFactory, EventFactory, ProductFactory

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = {"min_drop_percent": 10, "viewed_within_days": 30}
OFFER_HTML = """{% extends "emails/base.html" %}
{% block content %}<p>Hello {{ customer.greeting_name }}, something you looked at costs less now.</p>{% endblock %}"""


@pytest.fixture
def price_dropped():
    return triggers.get("price_dropped")


def product(sku: str, price: str, *, updated_at: datetime = NOW - timedelta(days=60)) -> Product:
    """Create a product whose last change is `updated_at` (auto_now would stamp the wall clock)."""
    created = ProductFactory(sku=sku, name=f"Product {sku}", price=Decimal(price))
    Product.objects.filter(pk=created.pk).update(updated_at=updated_at)
    return created


def view(customer: Customer, sku: str, at: datetime, **properties) -> None:
    EventFactory(customer=customer, name="product_viewed", occurred_at=at, properties={"sku": sku, **properties})


def reprice(sku: str, price: str, at: datetime) -> None:
    """Change a price as the product import does: updated_at moves with it."""
    Product.objects.filter(sku=sku).update(price=Decimal(price), updated_at=at)


# --- Config, checked at save ------------------------------------------------------------------


def test_clean_fills_the_default_window(price_dropped):
    assert price_dropped.clean({"min_drop_percent": 10}) == {"min_drop_percent": 10, "viewed_within_days": 30}
    assert price_dropped.clean({"min_drop_percent": 12.5, "viewed_within_days": 7}) == {
        "min_drop_percent": 12.5,
        "viewed_within_days": 7,
    }


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "min_drop_percent"),
        ({"min_drop_percent": 0}, "min_drop_percent"),
        ({"min_drop_percent": 100}, "min_drop_percent"),
        ({"min_drop_percent": "10"}, "min_drop_percent"),
        ({"min_drop_percent": True}, "min_drop_percent"),
        ({"min_drop_percent": 10, "viewed_within_days": 0}, "viewed_within_days"),
        ({"min_drop_percent": 10, "viewed_within_days": 366}, "viewed_within_days"),
        ({"min_drop_percent": 10, "viewed_within_days": 1.5}, "viewed_within_days"),
        ({"min_drop_percent": 10, "viewed_within_days": "30"}, "viewed_within_days"),
        ({"min_drop_percent": 10, "viewed_within": 30}, "viewed_within"),
    ],
)
def test_clean_names_the_field_at_fault(price_dropped, config, field):
    with pytest.raises(TriggerError) as raised:
        price_dropped.clean(config)

    assert raised.value.field == field


def test_a_campaign_with_a_bad_config_is_refused_at_launch(db):
    campaign = Campaign.objects.create(
        name="Price drop", trigger_type="price_dropped", trigger_config={"min_drop_percent": 0}
    )
    Step.objects.create(campaign=campaign, position=1, key="done", type="exit")

    with pytest.raises(CampaignError) as raised:
        launch(campaign, NOW)

    assert raised.value.field == "trigger_config.min_drop_percent"
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


# --- Candidates -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_candidates_are_viewers_of_products_now_cheaper_by_the_minimum(price_dropped):
    product("DROP15", "17.00")
    product("DROP10", "18.00")
    product("DROP5", "19.00")
    product("RISE", "22.00")
    fifteen, exactly_ten, five, risen, unknown_sku = (CustomerFactory() for _ in range(5))
    view(fifteen, "DROP15", NOW - timedelta(days=2), price="20.00", currency="EUR")
    view(exactly_ten, "DROP10", NOW - timedelta(days=29, hours=23), price=20)
    view(five, "DROP5", NOW - timedelta(days=1), price="20.00")
    view(risen, "RISE", NOW - timedelta(days=1), price="20.00")
    view(unknown_sku, "GONE", NOW - timedelta(days=1), price="20.00")

    found = list(price_dropped.candidates(CONFIG, None, NOW))

    assert found == [
        Candidate(
            fifteen.pk,
            {
                "sku": "DROP15",
                "name": "Product DROP15",
                "url": "https://shop.example.com/products/DROP15",
                "currency": "EUR",
                "old_price": "20.00",
                "new_price": "17.00",
                "drop_percent": 15.0,
                "viewed_at": "2024-05-30T12:00:00+00:00",
            },
        ),
        Candidate(
            exactly_ten.pk,
            {
                "sku": "DROP10",
                "name": "Product DROP10",
                "url": "https://shop.example.com/products/DROP10",
                "currency": "EUR",
                "old_price": "20.00",
                "new_price": "18.00",
                "drop_percent": 10.0,
                "viewed_at": "2024-05-02T13:00:00+00:00",
            },
        ),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("viewed_ago", "name", "properties"),
    [
        # The window is (now - 30 days, now]; a view after now is the next check's.
        (timedelta(days=30), "product_viewed", {"sku": "DROP15", "price": "20.00"}),
        (timedelta(days=45), "product_viewed", {"sku": "DROP15", "price": "20.00"}),
        (-timedelta(minutes=1), "product_viewed", {"sku": "DROP15", "price": "20.00"}),
        (timedelta(days=1), "cart_added", {"sku": "DROP15", "price": "20.00"}),
        (timedelta(days=1), "product_viewed", {"sku": "DROP15"}),
        (timedelta(days=1), "product_viewed", {"sku": "DROP15", "price": "twenty"}),
        (timedelta(days=1), "product_viewed", {"sku": "DROP15", "price": "0"}),
        (timedelta(days=1), "product_viewed", {"sku": "DROP15", "price": "20.00", "currency": "USD"}),
        (timedelta(days=1), "product_viewed", {"price": "20.00"}),
    ],
)
def test_candidates_ignore_views_outside_the_window_or_the_contract(price_dropped, viewed_ago, name, properties):
    product("DROP15", "17.00")
    EventFactory(customer=CustomerFactory(), name=name, occurred_at=NOW - viewed_ago, properties=properties)

    assert list(price_dropped.candidates(CONFIG, None, NOW)) == []


@pytest.mark.django_db
def test_a_customer_is_a_candidate_once_for_their_largest_drop(price_dropped):
    product("SMALL", "17.00")
    product("LARGE", "10.00")
    customer = CustomerFactory()
    view(customer, "LARGE", NOW - timedelta(days=3), price="20.00")
    view(customer, "SMALL", NOW - timedelta(days=1), price="20.00")
    view(customer, "LARGE", NOW - timedelta(days=2), price="20.00")

    found = list(price_dropped.candidates(CONFIG, None, NOW))

    assert [(candidate.customer_id, candidate.data["sku"], candidate.data["viewed_at"]) for candidate in found] == [
        (customer.pk, "LARGE", "2024-05-30T12:00:00+00:00")
    ]


@pytest.mark.django_db
def test_since_the_last_check_only_new_views_and_changed_products_count(price_dropped):
    since = NOW - timedelta(hours=1)
    product("CHANGED", "15.00", updated_at=since + timedelta(minutes=10))
    product("UNCHANGED", "15.00", updated_at=since - timedelta(days=1))
    product("CHANGES_LATER", "15.00", updated_at=NOW + timedelta(minutes=1))
    saw_change, viewed_anew, seen_before, too_early = (CustomerFactory() for _ in range(4))
    view(saw_change, "CHANGED", since - timedelta(days=3), price="20.00")
    view(viewed_anew, "UNCHANGED", since + timedelta(minutes=5), price="20.00")
    view(seen_before, "UNCHANGED", since - timedelta(days=3), price="20.00")
    view(too_early, "CHANGES_LATER", since - timedelta(days=3), price="20.00")

    found = list(price_dropped.candidates(CONFIG, since, NOW))

    assert [candidate.customer_id for candidate in found] == [saw_change.pk, viewed_anew.pk]


# --- End to end: launch, poll, advance ------------------------------------------------------


@pytest.fixture
def campaign(db):
    """A price-drop campaign that tags the customer, sends an e-mail and exits."""
    template = save_template("Price dropped", subject="It costs less now", html=OFFER_HTML)
    created = Campaign.objects.create(
        name="Price drop", trigger_type="price_dropped", trigger_config=CONFIG, quiet_hours=False
    )
    Step.objects.create(
        campaign=created, position=1, key="tag", type="tag_customer", config={"tag": "price-drop-offered"}
    )
    Step.objects.create(
        campaign=created, position=2, key="offer", type="send_email", config={"template": template.name}
    )
    Step.objects.create(campaign=created, position=3, key="done", type="exit")
    return created


def test_polling_enrolls_exactly_the_customers_whose_viewed_product_dropped(campaign):
    launched = NOW - timedelta(hours=2)
    product("DROP15", "20.00")
    product("DROP5", "20.00")
    qualifies, small_drop, old_view, unknown_sku, viewed_after_drop = (CustomerFactory() for _ in range(5))
    view(qualifies, "DROP15", launched - timedelta(days=3), price="20.00")
    view(small_drop, "DROP5", launched - timedelta(days=3), price="20.00")
    view(old_view, "DROP15", launched - timedelta(days=40), price="20.00")
    view(unknown_sku, "GONE", launched - timedelta(days=3), price="20.00")
    launch(campaign, launched)
    reprice("DROP15", "17.00", NOW - timedelta(hours=1))
    reprice("DROP5", "19.00", NOW - timedelta(hours=1))
    view(viewed_after_drop, "DROP15", NOW - timedelta(minutes=30), price="17.00")

    enrolled = poll_triggers(NOW)

    assert enrolled == 1
    assert list(Enrollment.objects.values_list("customer_id", "state", "step__key", "trigger_data")) == [
        (
            qualifies.pk,
            EnrollmentState.ACTIVE,
            "tag",
            {
                "sku": "DROP15",
                "name": "Product DROP15",
                "url": "https://shop.example.com/products/DROP15",
                "currency": "EUR",
                "old_price": "20.00",
                "new_price": "17.00",
                "drop_percent": 15.0,
                "viewed_at": "2024-05-29T10:00:00+00:00",
            },
        )
    ]
    campaign.refresh_from_db()
    assert campaign.trigger_checked_at == NOW


def test_a_second_poll_without_changes_enrolls_no_one(campaign):
    product("DROP15", "20.00")
    customer = CustomerFactory()
    view(customer, "DROP15", NOW - timedelta(days=3), price="20.00")
    launch(campaign, NOW - timedelta(hours=2))
    reprice("DROP15", "17.00", NOW - timedelta(hours=1))
    assert poll_triggers(NOW) == 1

    assert poll_triggers(NOW + timedelta(minutes=5)) == 0
    assert Enrollment.objects.count() == 1


def test_advancing_tags_the_customer_queues_one_message_and_exits(campaign):
    product("DROP15", "20.00")
    customer = CustomerFactory(attributes={"tags": ["vip"]})
    view(customer, "DROP15", NOW - timedelta(days=3), price="20.00")
    launch(campaign, NOW - timedelta(hours=2))
    reprice("DROP15", "17.00", NOW - timedelta(hours=1))
    poll_triggers(NOW)
    enrollment = Enrollment.objects.get()

    report = advance([enrollment.pk], NOW)

    assert report.outcomes == [
        "tag: tagged price-drop-offered",
        f"offer: queued message {Message.objects.get().pk}",
        "done: exited",
    ]
    enrollment.refresh_from_db()
    assert enrollment.state == EnrollmentState.EXITED
    customer.refresh_from_db()
    assert customer.attributes == {"tags": ["vip", "price-drop-offered"]}
    assert list(Message.objects.values_list("enrollment_id", "step__key", "customer_id")) == [
        (enrollment.pk, "offer", customer.pk)
    ]


# --- The step -------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"tag": ""}, {"tag": "Price Drop"}, {"tag": "x" * 41}, {"tag": 7}])
def test_tag_customer_names_the_field_at_fault(config):
    with pytest.raises(StepError) as raised:
        steps.get("tag_customer").clean(config, set())

    assert raised.value.field == "tag"


class RecordingEffects:
    """Effects that only record what a step asked for, as a simulation does."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, object]] = []

    def send_email(self, context, template_id):
        raise AssertionError("not expected")

    def call_webhook(self, context, url, body):
        raise AssertionError("not expected")

    def update_customer(self, context, field, value):
        self.updates.append((field, value))

    def change_membership(self, context, segment_id, *, add):
        raise AssertionError("not expected")


@pytest.mark.parametrize(
    ("attributes", "outcome", "updates"),
    [
        ({}, "tagged price-drop-offered", [("attributes.tags", ["price-drop-offered"])]),
        ({"tags": ["vip"]}, "tagged price-drop-offered", [("attributes.tags", ["vip", "price-drop-offered"])]),
        ({"tags": ["price-drop-offered"]}, "already tagged price-drop-offered", []),
        ({"tags": "vip"}, "not tagged: attributes.tags is not a list", []),
    ],
)
def test_tag_customer_acts_only_through_its_effects(campaign, attributes, outcome, updates):
    customer = CustomerFactory(attributes=attributes)
    enrollment = Enrollment.objects.create(campaign=campaign, customer=customer, entered_at=NOW)
    effects = RecordingEffects()
    context = StepContext(
        campaign, campaign.steps.get(key="tag"), enrollment, {"pk": customer.pk, "attributes": attributes}, NOW, effects
    )

    result = steps.get("tag_customer").run(context)

    assert result == StepResult(outcome)
    assert effects.updates == updates
    customer.refresh_from_db()
    assert customer.attributes == attributes


def test_a_test_only_step_registers_for_the_block_alone():
    class Noop(StepType):
        label = "Do nothing"
        example = {}

        def run(self, context):
            return StepResult("nothing")

    with steps.temporarily("noop_for_test", Noop) as registered:
        assert steps.get("noop_for_test") is registered

    assert "noop_for_test" not in steps
