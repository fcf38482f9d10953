"""Changing a launched campaign: edit a draft copy, then launch it in the original's place.

A launched campaign is never edited in place: its steps are what its customers are walking
through, and a change would reach them without an approver's launch. The copy is an ordinary
draft; launching it (which needs the launch permission) archives the original in the same
transaction, so exactly one of the two is live.
"""

from django.db import transaction

from campaigns.engine import launch
from campaigns.models import Campaign, CampaignStatus, Step
from campaigns.schedules import sync_schedule

EDITABLE_STATUSES = (CampaignStatus.DRAFT,)
_COPIED_FIELDS = (
    "description", "trigger_type", "trigger_config", "audience_id", "goal_event", "goal_days", "holdout_percent",
    "reentry", "reentry_cooldown_days", "frequency_cap", "frequency_window_hours", "quiet_hours",
)  # fmt: skip


def is_editable(campaign: Campaign | None) -> bool:
    """Tell whether a campaign's definition may be changed (only drafts may)."""
    return campaign is None or campaign.pk is None or campaign.status in EDITABLE_STATUSES


def copy_as_draft(campaign: Campaign) -> Campaign:
    """Return a new draft with the campaign's definition and steps, replacing it once launched."""
    with transaction.atomic():
        copy = Campaign(
            name=f"{campaign.name} (draft copy)"[: Campaign._meta.get_field("name").max_length],
            replaces=campaign if campaign.status != CampaignStatus.DRAFT else campaign.replaces,
            **{field: getattr(campaign, field) for field in _COPIED_FIELDS},
        )
        copy.save()
        Step.objects.bulk_create(
            Step(campaign=copy, position=step.position, key=step.key, type=step.type, config=step.config)
            for step in campaign.steps.order_by("position")
        )
    return copy


def launch_in_place(campaign: Campaign) -> Campaign:
    """Launch a campaign; a draft copy archives the launched campaign it replaces, in one transaction."""
    with transaction.atomic():
        launch(campaign)
        original = campaign.replaces
        if original is not None and original.status in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED):
            original.status = CampaignStatus.ARCHIVED
            original.save(update_fields=["status", "updated_at"])
            sync_schedule(original)
    return campaign
