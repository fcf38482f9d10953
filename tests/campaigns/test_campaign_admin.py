"""The campaign admin: configs refused at save with their field, launching for approvers only, enrolling, simulating."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission

from campaigns.models import Campaign, CampaignStatus, Enrollment, Message, Step
from marketing.models import Event
from tests.factories import CustomerFactory

PASSWORD = "a-long-admin-passphrase"


def staff(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, f"{username}@shop.example", PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="campaigns", codename__in=codenames))
    return user


MARKETER = ("view_campaign", "add_campaign", "change_campaign", "view_step", "add_step", "change_step", "delete_step")


@pytest.fixture
def marketer(client, django_user_model):
    client.force_login(staff(django_user_model, "marketer", *MARKETER))
    return client


@pytest.fixture
def approver(client, django_user_model):
    client.force_login(staff(django_user_model, "approver", *MARKETER, "launch_campaign"))
    return client


def campaign_form(steps: list[dict], **fields) -> dict:
    data = {
        "name": "Welcome series", "description": "", "trigger_type": "event", "trigger_config": '{"event": "signed_up"}',
        "audience": "", "goal_event": "order_placed", "goal_days": "7", "holdout_percent": "0", "reentry": "once",
        "reentry_cooldown_days": "30", "frequency_cap": "", "frequency_window_hours": "", "quiet_hours": "on",
        "steps-TOTAL_FORMS": str(len(steps)), "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for index, step in enumerate(steps):
        data.update({f"steps-{index}-{name}": value for name, value in step.items()})
    data.update(fields)
    return data


def test_a_campaign_with_valid_configs_is_saved_as_a_draft(marketer, welcome_template):
    response = marketer.post(
        "/admin/campaigns/campaign/add/",
        campaign_form(
            [
                {"position": "0", "key": "wait", "type": "wait", "config": '{"hours": 2}'},
                {"position": "1", "key": "hello", "type": "send_email", "config": '{"template": "Welcome"}'},
            ]
        ),
    )

    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert campaign.status == CampaignStatus.DRAFT
    assert list(campaign.steps.values_list("key", "config")) == [
        ("wait", {"hours": 2}),
        ("hello", {"template": welcome_template.pk}),
    ]


@pytest.mark.parametrize(
    ("fields", "steps", "error"),
    [
        ({"trigger_config": '{"event": ""}'}, [{"position": "0", "key": "end", "type": "exit", "config": "{}"}], "event: is empty; name what happened, e.g. cart_added"),
        ({}, [{"position": "0", "key": "hello", "type": "send_email", "config": '{"template": "Nope"}'}], "template: no e-mail template &#x27;Nope&#x27;"),
        ({}, [{"position": "0", "key": "check", "type": "branch", "config": '{"ordered_since_entry": true, "then": "gone", "else": "check"}'}],
         "then: must name a step of this campaign (check); got &#x27;gone&#x27;"),
        ({}, [{"position": "0", "key": "wait", "type": "wait", "config": '{"hours": 0}'}], "hours: must be a whole number from 1 to 8760"),
    ],
)  # fmt: skip
def test_a_config_that_cannot_run_is_refused_at_save_naming_the_key(marketer, welcome_template, fields, steps, error):
    response = marketer.post("/admin/campaigns/campaign/add/", campaign_form(steps, **fields))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert Campaign.objects.count() == 0
    assert Step.objects.count() == 0


def draft(welcome_template) -> Campaign:
    campaign = Campaign.objects.create(name="Draft", trigger_type="manual")
    Step.objects.create(
        campaign=campaign, position=0, key="hello", type="send_email", config={"template": welcome_template.name}
    )
    return campaign


def test_only_an_approver_can_launch(marketer, welcome_template):
    campaign = draft(welcome_template)

    response = marketer.post(
        "/admin/campaigns/campaign/", {"action": "launch_selected", "_selected_action": [campaign.pk]}, follow=True
    )

    # The action is not even offered: the admin refuses the choice.
    assert "launch_selected" not in response.content.decode()
    assert "No action selected." in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT


def test_an_approver_launches_pauses_and_archives_and_each_change_is_audited(approver, welcome_template):
    campaign = draft(welcome_template)

    for action, status in (
        ("launch_selected", "active"),
        ("pause_selected", "paused"),
        ("archive_selected", "archived"),
    ):
        approver.post("/admin/campaigns/campaign/", {"action": action, "_selected_action": [campaign.pk]})
        assert Campaign.objects.get(pk=campaign.pk).status == status

    audit = LogEntry.objects.filter(object_id=str(campaign.pk)).order_by("action_time")
    assert [(entry.user.username, entry.get_change_message()) for entry in audit] == [
        ("approver", "launched (status active)"),
        ("approver", "paused (status paused)"),
        ("approver", "archived (status archived)"),
    ]


def test_anonymous_and_non_staff_users_reach_nothing(client, django_user_model, welcome_template):
    campaign = draft(welcome_template)
    assert client.get("/admin/campaigns/campaign/").status_code == 302
    client.force_login(django_user_model.objects.create_user("shopper", "s@example.com", PASSWORD))

    response = client.post(
        "/admin/campaigns/campaign/", {"action": "launch_selected", "_selected_action": [campaign.pk]}
    )

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT


def test_enrolling_by_shop_id_from_the_campaign_page(
    approver, welcome_template, django_capture_on_commit_callbacks, office_hours
):
    campaign = draft(welcome_template)
    approver.post("/admin/campaigns/campaign/", {"action": "launch_selected", "_selected_action": [campaign.pk]})
    CustomerFactory(external_id="A-1")

    with django_capture_on_commit_callbacks(execute=True):
        response = approver.post(
            f"/admin/campaigns/campaign/{campaign.pk}/enroll/", {"external_ids": "A-1\nNOPE-9"}, follow=True
        )

    assert "1 enrolled; unknown ids: NOPE-9." in response.content.decode()
    assert list(Enrollment.objects.values_list("customer__external_id", "state")) == [("A-1", "completed")]


def test_the_simulation_page_reports_per_step_without_sending(approver, welcome_template, office_hours):
    campaign = Campaign.objects.create(name="Carts", trigger_type="event", trigger_config={"event": "cart_added"})
    Step.objects.create(
        campaign=campaign, position=0, key="hello", type="send_email", config={"template": welcome_template.name}
    )
    for customer in (CustomerFactory(), CustomerFactory()):
        Event.objects.create(
            external_id=f"cart-{customer.pk}",
            customer=customer,
            name="cart_added",
            occurred_at=office_hours - timedelta(days=1),
        )

    response = approver.post(f"/admin/campaigns/campaign/{campaign.pk}/simulate/", {"days": 7})

    page = response.content.decode()
    assert response.status_code == 200
    assert "The trigger fired 2 times; 2 entered (0 held out)" in page
    assert "2 e-mails would have been sent." in page
    assert "<tr><td>0</td><td>hello</td><td>send_email</td><td>2</td><td>2</td><td>2</td><td>0</td></tr>" in page
    assert Enrollment.objects.count() == 0
    assert Message.objects.count() == 0
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT


def test_a_campaign_nothing_can_replay_says_so(approver, welcome_template):
    campaign = draft(welcome_template)

    response = approver.post(f"/admin/campaigns/campaign/{campaign.pk}/simulate/", {"days": 7})

    assert (
        "trigger_type: &#x27;manual&#x27; starts nobody by itself: there is nothing to replay"
        in response.content.decode()
    )


def _steps_form(campaign: Campaign, rows: list[dict]) -> dict:
    """The change form of a draft campaign with these step rows (existing ones carry their id)."""
    existing = sum(1 for row in rows if "id" in row)
    data = campaign_form([], name=campaign.name, trigger_type="manual", trigger_config="{}")
    data.update({"steps-TOTAL_FORMS": str(len(rows)), "steps-INITIAL_FORMS": str(existing)})
    for index, row in enumerate(rows):
        data.update({f"steps-{index}-{name}": value for name, value in row.items()})
        if "id" in row:
            data[f"steps-{index}-campaign"] = str(campaign.pk)
    return data


def _wait(key: str, position: int, step_id: int | None = None) -> dict:
    row = {"position": str(position), "key": key, "type": "wait", "config": '{"hours": 1}'}
    return {**row, "id": str(step_id)} if step_id else row


@pytest.mark.parametrize(
    ("moves", "inserted", "expected"),
    [
        ({"a": 0, "b": 2, "c": 3}, ("new", 1), ["a", "new", "b", "c"]),  # insert, shifting the rest down
        ({"a": 1, "b": 0, "c": 2}, None, ["b", "a", "c"]),  # swap
        ({"a": 2, "b": 0, "c": 1}, None, ["b", "c", "a"]),  # rotate
    ],
)
def test_reordering_and_inserting_steps_just_works(marketer, moves, inserted, expected):
    campaign = Campaign.objects.create(name="Draft", trigger_type="manual")
    ids = {key: Step.objects.create(campaign=campaign, position=index, key=key, type="wait", config={"hours": 1}).pk
           for index, key in enumerate("abc")}  # fmt: skip
    rows = [_wait(key, position, ids[key]) for key, position in moves.items()]
    if inserted:
        rows.append(_wait(*inserted))

    response = marketer.post(f"/admin/campaigns/campaign/{campaign.pk}/change/", _steps_form(campaign, rows))

    assert response.status_code == 302
    assert list(campaign.steps.order_by("position").values_list("key", flat=True)) == expected


def test_two_steps_on_one_position_are_refused_with_the_field(marketer):
    campaign = Campaign.objects.create(name="Draft", trigger_type="manual")
    first = Step.objects.create(campaign=campaign, position=0, key="a", type="wait", config={"hours": 1})

    response = marketer.post(
        f"/admin/campaigns/campaign/{campaign.pk}/change/",
        _steps_form(campaign, [_wait("a", 0, first.pk), _wait("b", 0)]),
    )

    assert response.status_code == 200
    assert "Please correct the duplicate data for position." in response.content.decode()
    assert list(campaign.steps.values_list("key", "position")) == [("a", 0)]
