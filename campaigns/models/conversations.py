"""What conversations leave behind in campaigns: holds on promotional e-mail after a complaint."""

from django.db import models
from django.utils import timezone

from marketing.models import Customer, InboundMessage


class PromotionHoldQuerySet(models.QuerySet):
    def active(self, now) -> "PromotionHoldQuerySet":
        """Holds still in force at `now`."""
        return self.filter(until__gt=now)


class PromotionHold(models.Model):
    """No promotional e-mail to this customer until `until`: checked in delivery at the last moment, like suppression."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="promotion_holds", db_constraint=False
    )
    until = models.DateTimeField()
    reason = models.CharField(max_length=200)
    inbound_message = models.ForeignKey(
        InboundMessage, on_delete=models.SET_NULL, null=True, blank=True, related_name="promotion_holds"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = PromotionHoldQuerySet.as_manager()

    class Meta:
        ordering = ["-until"]
        indexes = [models.Index(fields=["customer", "until"], name="promotion_hold_customer")]

    def __str__(self) -> str:
        return f"{self.customer_id} held until {self.until:%Y-%m-%d %H:%M}"
