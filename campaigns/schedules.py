"""Recurring campaigns on django-celery-beat: one periodic task per campaign, kept in step with its status.

Beat reads its schedule from the database, so a recurring campaign's run time is a row the admin
can show and edit (Periodic tasks), and pausing or archiving the campaign disables it.
"""

import json

from django.conf import settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from campaigns.models import Campaign, CampaignStatus
from campaigns.triggers import parse_crontab

TASK = "campaigns.run_recurring_campaign"


def task_name(campaign: Campaign) -> str:
    return f"campaign {campaign.pk}: {campaign.name}"[:200]


def sync_schedule(campaign: Campaign) -> PeriodicTask | None:
    """Create, update or disable the campaign's periodic task to match its trigger and status."""
    existing = PeriodicTask.objects.filter(task=TASK, args=json.dumps([campaign.pk])).first()
    if campaign.trigger_type != "recurring":
        if existing is not None:
            existing.delete()
        return None
    fields = parse_crontab(campaign.trigger_config["crontab"])
    schedule, _ = CrontabSchedule.objects.get_or_create(**fields, timezone=settings.TIME_ZONE)
    task = existing or PeriodicTask(task=TASK, args=json.dumps([campaign.pk]))
    task.name = task_name(campaign)
    task.crontab = schedule
    task.enabled = campaign.status == CampaignStatus.ACTIVE
    task.description = f"Enrolls the audience of the recurring campaign {campaign.name!r}."
    task.save()
    return task
