"""The campaigns app's models, one module per concern."""

from campaigns.models.content import (
    Channel,
    ContentPiece,
    ContentStatus,
    EmailTemplate,
    TemplateVariant,
    TemplateVersion,
)
from campaigns.models.conversations import PromotionHold
from campaigns.models.delivery import (
    REPLY_KINDS,
    TRANSACTIONAL_KINDS,
    Broadcast,
    BroadcastStatus,
    Message,
    MessageKind,
    MessageQuerySet,
    MessageStatus,
)
from campaigns.models.engine import (
    Campaign,
    CampaignStatus,
    Enrollment,
    EnrollmentState,
    Reentry,
    Step,
    StepVisit,
)

__all__ = [
    "REPLY_KINDS",
    "TRANSACTIONAL_KINDS",
    "PromotionHold",
    "Broadcast",
    "Campaign",
    "CampaignStatus",
    "Enrollment",
    "EnrollmentState",
    "Reentry",
    "Step",
    "StepVisit",
    "BroadcastStatus",
    "Channel",
    "ContentPiece",
    "ContentStatus",
    "EmailTemplate",
    "Message",
    "MessageKind",
    "MessageQuerySet",
    "MessageStatus",
    "TemplateVariant",
    "TemplateVersion",
]
