"""Recurring campaigns on django-celery-beat: the periodic task follows the campaign; each run enrolls the audience."""

import json

import pytest
from django_celery_beat.models import PeriodicTask

from campaigns.engine import CampaignError, advance, launch, run_recurring, set_status
from campaigns.models import Campaign, CampaignStatus, Enrollment, Reentry, Step
from tests.factories import CustomerFactory


def recurring(crontab: str = "0 9 * * 1") -> Campaign:
    campaign = Campaign.objects.create(
        name="Monday digest", trigger_type="recurring", trigger_config={"crontab": crontab}, reentry=Reentry.ALWAYS
    )
    Step.objects.create(campaign=campaign, position=0, key="done", type="exit", config={})
    return campaign


@pytest.mark.django_db
def test_launching_a_recurring_campaign_schedules_it_in_beat_and_pausing_disables_it():
    campaign = launch(recurring())

    task = PeriodicTask.objects.get(task="campaigns.run_recurring_campaign")
    assert (task.name, json.loads(task.args), task.enabled) == (
        f"campaign {campaign.pk}: Monday digest",
        [campaign.pk],
        True,
    )
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week, task.crontab.day_of_month) == (
        "0",
        "9",
        "1",
        "*",
    )

    set_status(campaign, CampaignStatus.PAUSED)
    assert PeriodicTask.objects.get(pk=task.pk).enabled is False
    set_status(campaign, CampaignStatus.ACTIVE)
    assert PeriodicTask.objects.get(pk=task.pk).enabled is True
    assert PeriodicTask.objects.filter(task="campaigns.run_recurring_campaign").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("crontab", "message"),
    [
        ("0 9 * *", "needs 5 fields (minute hour day-of-month month day-of-week), e.g. '0 9 * * 1'; got '0 9 * *'"),
        ("0 25 * * 1", "'0 25 * * 1' is not a schedule"),
    ],
)
def test_a_crontab_beat_cannot_run_is_refused_at_launch(crontab, message):
    campaign = recurring(crontab)

    with pytest.raises(CampaignError) as refused:
        launch(campaign)

    assert refused.value.field == "trigger_config.crontab"
    assert refused.value.message.startswith(message)
    assert PeriodicTask.objects.filter(task="campaigns.run_recurring_campaign").count() == 0


@pytest.mark.django_db
def test_each_run_enrolls_the_whole_audience_again_once_their_last_run_is_over():
    campaign = launch(recurring())
    customers = [CustomerFactory(), CustomerFactory()]

    first = run_recurring(campaign.pk)
    while_live = run_recurring(campaign.pk)  # the first enrollments have not advanced yet: one live one each
    advance(list(Enrollment.objects.values_list("pk", flat=True)))
    second = run_recurring(campaign.pk)

    assert (first, while_live, second) == (2, 0, 2)
    assert Enrollment.objects.filter(customer__in=customers).count() == 4


@pytest.mark.django_db
def test_a_paused_campaign_enrolls_nobody_when_its_task_fires_anyway():
    campaign = launch(recurring())
    CustomerFactory()
    set_status(campaign, CampaignStatus.PAUSED)

    assert run_recurring(campaign.pk) == 0
    assert Enrollment.objects.count() == 0
