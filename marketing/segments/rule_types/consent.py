"""Consent and suppression state: {"state": "opted_in"} or "opted_out", "unknown", "suppressed", "mailable"."""

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q

from marketing.models import Consent, Suppression
from marketing.segments.registry import Facts, RuleType, one_of, only_keys, rule_types

STATES = ("opted_in", "opted_out", "unknown", "suppressed", "mailable")


def _suppressed() -> Q:
    return Q(Exists(Suppression.objects.filter(email_hash=OuterRef("email_hash"))))


@rule_types.register("consent")
class ConsentRule(RuleType):
    label = "Consent or suppression"
    example = {"state": "mailable"}

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        only_keys(config, {"state"})
        return {"state": one_of(config, "state", STATES)}

    def condition(self, config: dict[str, Any], now: datetime) -> Q:
        state = config["state"]
        if state == "suppressed":
            return _suppressed()
        if state == "mailable":
            return Q(consent_state=Consent.OPTED_IN) & ~Q(email="") & ~_suppressed()
        return Q(consent_state=state)

    def matches(self, config: dict[str, Any], facts: Facts, now: datetime) -> bool:
        state = config["state"]
        customer = facts.customer
        if state == "suppressed":
            return facts.suppressed
        if state == "mailable":
            return customer["consent_state"] == Consent.OPTED_IN and customer["email"] != "" and not facts.suppressed
        return customer["consent_state"] == state
