"""The permission matrix: every admin action and view, for each group, anonymous users and non-staff."""

import json

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory

from campaigns.models import Broadcast, BroadcastStatus, Campaign, CampaignStatus, EmailTemplate, Message, Step
from campaigns.versions import save_template
from marketing.models import ApiKey, Segment, SegmentKind
from marketing.permissions import sync_groups
from tests.campaigns.conftest import WELCOME_HTML
from tests.factories import CustomerFactory

GROUPS = ("Viewer", "Marketer", "Approver")
ALL, BUILDERS, APPROVER = set(GROUPS), {"Marketer", "Approver"}, {"Approver"}

# Who is offered each admin action. A new action must be added here, or the first test fails.
ACTIONS = {
    ("marketing.apikey", "revoke_keys"): APPROVER,
    ("marketing.customer", "export_data"): ALL,
    ("marketing.customer", "erase_data"): APPROVER,
    ("marketing.segment", "refresh_now"): BUILDERS,
    ("marketing.segment", "freeze"): BUILDERS,
    ("marketing.inboundmessage", "correct_label"): APPROVER,
    ("marketing.inboundmessage", "reply_with_template"): APPROVER,
    ("marketing.inboundmessage", "close"): APPROVER,
    ("ml.modelversion", "activate"): APPROVER,
    ("ml.modelversion", "roll_back_task"): APPROVER,
    ("ml.scoringrun", "score_again"): APPROVER,
    ("ml.salesforecastversion", "activate"): APPROVER,
    ("ml.salesforecastversion", "roll_back"): APPROVER,
    ("ml.intentmodelversion", "activate"): APPROVER,
    ("ml.intentmodelversion", "roll_back_intents"): APPROVER,
    ("ml.recommenderversion", "activate"): APPROVER,
    ("ml.recommenderversion", "roll_back_task"): APPROVER,
    ("ml.recommenderversion", "compute_picks"): APPROVER,
    ("ml.sendtimeversion", "activate"): APPROVER,
    ("ml.sendtimeversion", "roll_back_task"): APPROVER,
    ("campaigns.contentpiece", "approve"): BUILDERS,
    ("campaigns.contentpiece", "reject"): BUILDERS,
    ("campaigns.contentpiece", "export_csv"): ALL,
    ("campaigns.contentpiece", "export_json"): ALL,
    ("campaigns.broadcast", "send_now"): APPROVER,
    ("campaigns.campaign", "launch_selected"): APPROVER,
    ("campaigns.campaign", "pause_selected"): APPROVER,
    ("campaigns.campaign", "archive_selected"): APPROVER,
    ("campaigns.campaign", "copy_selected"): BUILDERS,
    ("django_celery_beat.periodictask", "enable_tasks"): set(),
    ("django_celery_beat.periodictask", "disable_tasks"): set(),
    ("django_celery_beat.periodictask", "toggle_tasks"): set(),
    ("django_celery_beat.periodictask", "run_tasks"): set(),
    ("axes.accessattempt", "cleanup_expired_attempts"): set(),
}


def _actions():
    for model, model_admin in admin.site._registry.items():
        for function, name, _ in model_admin._get_base_actions():
            if name != "delete_selected":
                yield model._meta.label_lower, name, function, model_admin


@pytest.fixture(autouse=True)
def groups(request):
    # The migration made them; a transactional test elsewhere in the run may have flushed them since.
    if "db" in request.fixturenames or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("db")
        sync_groups()


def user_in(django_user_model, group: str, *, staff: bool = True):
    user = django_user_model.objects.create_user(group.lower(), f"{group.lower()}@shop.example", "x", is_staff=staff)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def people(db, django_user_model) -> dict[str, Client]:
    clients = {}
    for group in GROUPS:
        client = Client()
        client.force_login(user_in(django_user_model, group))
        clients[group] = client
    outsider = Client()
    outsider.force_login(django_user_model.objects.create_user("shopper", "shopper@shop.example", "x", is_staff=False))
    clients["non-staff"] = outsider
    clients["anonymous"] = Client()
    return clients


def test_every_action_names_its_permission_and_is_in_the_matrix():
    found = {(label, name): function for label, name, function, _ in _actions()}

    assert set(found) == set(ACTIONS)
    assert [key for key, function in found.items() if not getattr(function, "allowed_permissions", None)] == []


@pytest.mark.django_db
@pytest.mark.parametrize("group", GROUPS)
def test_each_group_is_offered_exactly_its_actions(django_user_model, group):
    user = user_in(django_user_model, group)
    request = RequestFactory().get("/admin/")
    request.user = user

    offered = {(label, name) for label, name, _, model_admin in _actions() if name in model_admin.get_actions(request)}

    assert offered == {key for key, groups in ACTIONS.items() if group in groups}


@pytest.fixture
def objects(db):
    template = save_template("Sale", subject="Sale", html=WELCOME_HTML)
    broadcast = Broadcast.objects.create(name="Winter", template=template)
    api_key = ApiKey(name="shop backend")
    api_key.assign_new_key()
    api_key.save()
    segment = Segment.objects.create(name="Everyone", kind=SegmentKind.DYNAMIC)
    campaign = Campaign.objects.create(
        name="Welcome", trigger_type="event", trigger_config={"event": "signed_up"}, status=CampaignStatus.ACTIVE
    )
    Step.objects.create(campaign=campaign, position=0, key="hello", type="send_email", config={"template": "Sale"})
    CustomerFactory.create_batch(2)
    return {"broadcast": broadcast, "api_key": api_key, "segment": segment, "campaign": campaign}


def _run(client: Client, model: str, action: str, pk: int):
    return client.post(f"/admin/{model.replace('.', '/')}/", {"action": action, "_selected_action": [pk]})


@pytest.mark.parametrize("who", ["Viewer", "Marketer", "non-staff", "anonymous"])
def test_nobody_but_an_approver_sends_a_broadcast(people, objects, who):
    _run(people[who], "campaigns.broadcast", "send_now", objects["broadcast"].pk)

    assert Broadcast.objects.get().status == BroadcastStatus.DRAFT
    assert Message.objects.count() == 0


def test_an_approver_sends_a_broadcast_and_it_is_audited(people, objects, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _run(people["Approver"], "campaigns.broadcast", "send_now", objects["broadcast"].pk)

    assert Broadcast.objects.get().status != BroadcastStatus.DRAFT
    assert list(LogEntry.objects.values_list("user__username", "change_message")) == [("approver", "Sent now")]


@pytest.mark.parametrize("who", ["Viewer", "Marketer", "non-staff", "anonymous"])
def test_only_an_approver_revokes_api_keys(people, objects, who):
    _run(people[who], "marketing.apikey", "revoke_keys", objects["api_key"].pk)

    assert ApiKey.objects.get().revoked_at is None


@pytest.mark.parametrize("who", ["Viewer", "non-staff", "anonymous"])
def test_a_viewer_cannot_freeze_a_segment_or_start_scoring(people, objects, who, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _run(people[who], "marketing.segment", "freeze", objects["segment"].pk)
        _run(people[who], "ml.scoringrun", "score_again", 0)

    assert Segment.objects.count() == 1
    assert callbacks == []


@pytest.mark.parametrize(
    ("who", "status"),
    [("Viewer", 403), ("Marketer", 200), ("Approver", 200), ("non-staff", 302), ("anonymous", 302)],
)
def test_the_simulation_runs_by_post_for_those_who_build_campaigns(people, objects, who, status):
    url = f"/admin/campaigns/campaign/{objects['campaign'].pk}/simulate/"

    response = people[who].post(url, {"days": 365})

    assert response.status_code == status
    assert "The trigger fired" not in people["Approver"].get(url, {"days": 365}).content.decode()


@pytest.mark.parametrize(
    ("who", "status"),
    [("Viewer", 403), ("Marketer", 403), ("Approver", 302), ("non-staff", 302), ("anonymous", 302)],
)
def test_only_an_approver_enrolls_by_hand(people, objects, who, status):
    customer = CustomerFactory(external_id="c-77")

    response = people[who].post(f"/admin/campaigns/campaign/{objects['campaign'].pk}/enroll/", {"external_ids": "c-77"})

    assert response.status_code == status
    assert objects["campaign"].enrollments.filter(customer=customer).exists() == (who == "Approver")


@pytest.mark.parametrize("who", ["Marketer", "Approver"])
def test_an_active_campaign_cannot_be_changed_in_place(people, objects, who, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["crm.shop.example"]
    campaign = objects["campaign"]
    step = campaign.steps.get()
    form = {
        "name": "Welcome", "trigger_type": "event", "trigger_config": '{"event": "signed_up"}', "goal_event": "",
        "goal_days": "7", "holdout_percent": "0", "reentry": "once", "reentry_cooldown_days": "30", "quiet_hours": "on",
        "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "1", "steps-MIN_NUM_FORMS": "0", "steps-MAX_NUM_FORMS": "1000",
        "steps-0-id": str(step.pk), "steps-0-campaign": str(campaign.pk), "steps-0-position": "0", "steps-0-key": "hello",
        "steps-0-type": "webhook", "steps-0-config": '{"url": "https://evil.example/collect"}',
    }  # fmt: skip

    response = people[who].post(f"/admin/campaigns/campaign/{campaign.pk}/change/", form)

    assert response.status_code == 403
    assert Step.objects.get(pk=step.pk).type == "send_email"


def test_a_draft_copy_is_edited_and_launched_in_the_originals_place(
    people, objects, django_capture_on_commit_callbacks
):
    original = objects["campaign"]
    _run(people["Marketer"], "campaigns.campaign", "copy_selected", original.pk)
    copy = Campaign.objects.get(replaces=original)
    assert (copy.status, list(copy.steps.values_list("key", "type"))) == ("draft", [("hello", "send_email")])

    _run(people["Marketer"], "campaigns.campaign", "launch_selected", copy.pk)
    assert Campaign.objects.get(pk=copy.pk).status == CampaignStatus.DRAFT

    _run(people["Approver"], "campaigns.campaign", "launch_selected", copy.pk)

    assert Campaign.objects.get(pk=copy.pk).status == CampaignStatus.ACTIVE
    assert Campaign.objects.get(pk=original.pk).status == CampaignStatus.ARCHIVED


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://evil.example/collect", False),
        ("https://crm.shop.example.evil.example/x", False),
        ("https://crm.shop.example/hooks/kairos", True),
        ("https://eu.hooks.example/kairos", True),
        ("https://hooks.example/kairos", True),
    ],
)
def test_webhook_steps_may_only_target_allowed_hosts(settings, url, allowed):
    from campaigns.steps import StepError, steps

    settings.WEBHOOK_ALLOWED_HOSTS = ["crm.shop.example", ".hooks.example"]
    webhook = steps.get("webhook")

    if allowed:
        assert webhook.clean({"url": url}, set()) == {"url": url}
    else:
        with pytest.raises(StepError, match="is not in WEBHOOK_ALLOWED_HOSTS"):
            webhook.clean({"url": url}, set())


def _admin_urls(objects) -> list[str]:
    urls = [f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry]
    campaign = objects["campaign"].pk
    template = EmailTemplate.objects.get().pk
    return urls + [
        "/admin/",
        f"/admin/campaigns/campaign/{campaign}/simulate/",
        f"/admin/campaigns/campaign/{campaign}/enroll/",
        f"/admin/campaigns/emailtemplate/{template}/preview/",
        f"/admin/campaigns/emailtemplate/{template}/preview/frame/",
        "/admin/ml/forecast/category/shoes/",
    ]


@pytest.mark.parametrize("who", ["non-staff", "anonymous"])
def test_outsiders_reach_no_admin_page(people, objects, who):
    answers = {url: people[who].get(url) for url in _admin_urls(objects)}

    assert {url: response.status_code for url, response in answers.items() if response.status_code != 302} == {}
    assert all(response["Location"].startswith("/admin/login/") for response in answers.values())


def test_a_viewer_sees_every_list_and_changes_nothing(people, objects):
    viewer = people["Viewer"]
    lists = [
        url
        for url in _admin_urls(objects)
        if url.count("/") == 4 and url.split("/")[2] in {"marketing", "campaigns", "ml"}
    ]

    assert {url: viewer.get(url).status_code for url in lists} == {url: 200 for url in lists}
    assert viewer.get("/admin/campaigns/campaign/add/").status_code == 403
    assert (
        viewer.post(
            f"/admin/campaigns/emailtemplate/{EmailTemplate.objects.get().pk}/preview/", {"to": "me@shop.example"}
        ).status_code
        == 403
    )
    assert Message.objects.count() == 0


def test_the_groups_exist_with_their_telling_permissions(db):
    def codenames(name: str) -> set[str]:
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    assert {"launch_campaign", "erase_customer", "change_modelversion"} <= codenames("Approver")
    assert {"change_campaign", "add_broadcast", "change_emailtemplate"} <= codenames("Marketer")
    assert (
        codenames("Marketer") & {"launch_campaign", "erase_customer", "change_modelversion", "change_apikey"} == set()
    )
    assert {codename.split("_", 1)[0] for codename in codenames("Viewer")} == {"view"}
    assert json.dumps(sorted(codenames("Viewer"))).count("view_") == len(codenames("Viewer"))
