"""One event-name rule for the API, the importers, triggers, branch steps and segment rules; warnings for names never received."""

from datetime import UTC, datetime

import pytest

from campaigns.steps import StepError, steps
from campaigns.triggers import TriggerError, triggers
from marketing.event_names import EventNameError, check_event_name, received_event_names, unknown_event_warnings
from marketing.imports.values import event_name as imported_event_name
from marketing.ingest import FieldError, parse_event_name
from marketing.segments.registry import RuleError, rule_types
from tests.factories import CustomerFactory, EventFactory

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
REFUSED = {
    "Cart Added": "'Cart Added' is not snake_case (lower-case letters, digits and single underscores, e.g. cart_added); "
    "did you mean 'cart_added'?",
    "cart.added": "'cart.added' is not snake_case (lower-case letters, digits and single underscores, e.g. cart_added); "
    "did you mean 'cart_added'?",
    "cart-added": "'cart-added' is not snake_case (lower-case letters, digits and single underscores, e.g. cart_added); "
    "did you mean 'cart_added'?",
    "cart__added": "'cart__added' is not snake_case (lower-case letters, digits and single underscores, e.g. cart_added); "
    "did you mean 'cart_added'?",
    "add_to_cart": "'add_to_cart' does not end in a past-tense verb; name what happened, e.g. product_viewed or order_placed",
    "x" * 65: "is longer than 64 characters",
    "": "is empty; name what happened, e.g. cart_added",
}


def trigger_error(name: str) -> str:
    try:
        triggers.get("event").clean({"event": name})
    except TriggerError as error:
        return f"{error.field}: {error.message}"
    return "accepted"


def step_error(name: str) -> str:
    try:
        steps.get("branch").clean({"event_since_entry": name, "then": "a", "else": "a"}, {"a"})
    except StepError as error:
        return f"{error.field}: {error.message}"
    return "accepted"


def rule_error(name: str) -> str:
    try:
        rule_types.get("event").clean({"name": name, "op": "at_least", "count": 1})
    except RuleError as error:
        return f"{error.field}: {error.message}"
    return "accepted"


def api_error(name: str) -> str:
    try:
        parse_event_name(name)
    except FieldError as error:
        return str(error)
    return "accepted"


def import_error(name: str) -> str:
    try:
        imported_event_name(name)
    except ValueError as error:
        return str(error)
    return "accepted"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "reason"), list(REFUSED.items()))
def test_every_place_that_names_an_event_refuses_the_same_names_for_the_same_reason(name, reason):
    assert {
        "api": api_error(name),
        "import": import_error(name),
        "trigger": trigger_error(name),
        "branch step": step_error(name),
        "segment rule": rule_error(name),
    } == {
        "api": reason,
        "import": reason,
        "trigger": f"event: {reason}",
        "branch step": f"event_since_entry: {reason}",
        "segment rule": f"name: {reason}",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["cart_added", "logged_in", "signed_up", "order_placed", "page2_viewed", "product_bought"])
def test_every_place_that_names_an_event_accepts_the_same_names(name):
    assert [api_error(name), import_error(name), trigger_error(name), step_error(name), rule_error(name)] == [
        "accepted"
    ] * 5
    assert check_event_name(name) == name


def test_a_name_that_is_not_text_is_refused():
    with pytest.raises(EventNameError, match="must be text, not int"):
        check_event_name(42)


@pytest.mark.django_db
def test_a_name_never_received_warns_with_the_nearest_names_received():
    customer = CustomerFactory()
    for name in ("cart_added", "cart_viewed", "order_placed", "cart_added"):
        EventFactory(customer=customer, name=name)

    assert received_event_names() == ["cart_added", "cart_viewed", "order_placed"]
    assert unknown_event_warnings(["cart_added", "cart_addded", "newsletter_joined"]) == [
        "no event named 'cart_addded' has been received yet, so nothing will match it until one is; "
        "did you mean 'cart_added' or 'cart_viewed'?",
        "no event named 'newsletter_joined' has been received yet, so nothing will match it until one is",
    ]
    assert unknown_event_warnings(["order_placed"]) == []


@pytest.mark.django_db
def test_saving_a_campaign_that_waits_for_an_event_never_received_warns_in_the_admin(client, django_user_model):
    from tests.campaigns.test_campaign_admin import campaign_form

    user = django_user_model.objects.create_superuser("marketer", "m@shop.example", "a-long-admin-passphrase")
    client.force_login(user)
    EventFactory(customer=CustomerFactory(), name="cart_added")

    response = client.post(
        "/admin/campaigns/campaign/add/",
        campaign_form(
            [{"position": "0", "key": "check", "type": "branch",
              "config": '{"event_since_entry": "order_placed", "then": "check", "else": "check"}'}],
            trigger_config='{"event": "cart_addded"}',
        ),  # fmt: skip
        follow=True,
    )

    notes = [str(message) for message in response.context["messages"]]
    assert [note for note in notes if note.startswith("no event")] == [
        "no event named 'cart_addded' has been received yet, so nothing will match it until one is; "
        "did you mean 'cart_added'?",
        "no event named 'order_placed' has been received yet, so nothing will match it until one is",
    ]
