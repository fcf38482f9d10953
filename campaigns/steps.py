"""What a campaign does to a customer: a registry of step types, each with a config checked at save.

A step runs for one enrollment and returns a `StepResult`: go on (to the next step by position,
or to a named step), wait on this step until a time, or exit. Steps touch the world only through
the `Effects` they are given, so the same steps run for real in the engine and without sending
anything in a simulation. Other apps add step types in their own `steps.py`.
"""

import hashlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q

from campaigns.forecast_conditions import clean_condition
from campaigns.models import Campaign, EmailTemplate, Enrollment, Step
from campaigns.pacing import customer_zone, next_local_time
from campaigns.registry import ConfigError, Registry
from campaigns.send_times import BEST_TIME, SEND_TIMES, best_time_to_send
from marketing.event_names import EventNameError, check_event_name
from marketing.models import Customer, Event, Order, OrderStatus, Segment, SegmentKind
from marketing.segments.registry import RuleError, rule_types
from ml.forecast_trends import category_trend
from ml.models import SALES_FORECAST, ModelVersion, Score

logger = logging.getLogger("kairos")

# Customer columns an update step may change; anything else goes in attributes.<name>.
UPDATABLE_FIELDS = ("first_name", "last_name", "locale", "timezone", "country", "city")
BRANCH_CONDITIONS = ("rule", "score", "forecast", "event_since_entry", "ordered_since_entry")
WEBHOOK_RETRY_BASE_S = 60


class StepError(ConfigError):
    """A step's configuration is wrong; `field` names the key at fault."""


@dataclass(frozen=True)
class StepResult:
    outcome: str
    next_key: str | None = None  # a step's key to go to; None goes to the next step by position
    wait_until: datetime | None = None  # stay on this step and run it again then
    exit: bool = False


class Effects(Protocol):
    """What steps may do to the world; the engine's effects act, a simulation's only count."""

    def send_email(self, context: "StepContext", template_id: int) -> str: ...

    def call_webhook(self, context: "StepContext", url: str, body: dict) -> tuple[bool, str]: ...

    def update_customer(self, context: "StepContext", field: str, value: Any) -> None: ...

    def change_membership(self, context: "StepContext", segment_id: int, *, add: bool) -> None: ...

    def send_reply(self, context: "StepContext", template_id: int, message_id: int) -> str: ...

    def hold_promotions(self, context: "StepContext", days: int, message_id: int | None) -> str: ...

    def flag_message(self, context: "StepContext", message_id: int, reason: str) -> str: ...

    def suppress_sender(self, context: "StepContext", message_id: int) -> str: ...


@dataclass
class StepContext:
    campaign: Campaign
    step: Step
    enrollment: Enrollment
    customer: dict[str, Any]  # pk, email, timezone, attributes and the other customer fields
    now: datetime
    effects: Effects


class StepType(ABC):
    """A kind of step. Subclasses register with `@steps.register("key")`."""

    key: ClassVar[str]
    label: ClassVar[str]
    example: ClassVar[dict[str, Any]]

    def clean(self, config: dict[str, Any], step_keys: set[str]) -> dict[str, Any]:
        """Return the config validated, or raise StepError; `step_keys` are the campaign's step keys, for branches."""
        return {}

    @abstractmethod
    def run(self, context: StepContext) -> StepResult:
        """Do the step for one enrollment now."""

    def targets(self, config: dict[str, Any]) -> list[str]:
        """Return the step keys this step may jump to."""
        return []

    def event_names(self, config: dict[str, Any]) -> list[str]:
        """Return the event names the (cleaned) config refers to, so saving can warn of names never received."""
        return []


steps: Registry[StepType] = Registry("step", lambda message: StepError("type", message))


def _key(config: dict, name: str, step_keys: set[str]) -> str:
    value = config.get(name)
    if value not in step_keys:
        raise StepError(
            name, f"must name a step of this campaign ({', '.join(sorted(step_keys)) or 'none yet'}); got {value!r}"
        )
    return value


def _positive(config: dict, name: str, maximum: int) -> int:
    value = config.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise StepError(name, f"must be a whole number from 1 to {maximum}")
    return value


def _static_segment(config: dict) -> int:
    value = config.get("segment")
    segment = Segment.objects.filter(**({"pk": value} if isinstance(value, int) else {"name": value})).first()
    if segment is None:
        raise StepError("segment", f"no segment {value!r}")
    if segment.kind != SegmentKind.STATIC:
        raise StepError("segment", f"{segment.name!r} is dynamic; steps may only add to or remove from static segments")
    return segment.pk


@steps.register("send_email")
class SendEmail(StepType):
    label = "Send an e-mail"
    example = {"template": "Picked for you", "send_time": "best"}

    def clean(self, config, step_keys):
        value = config.get("template")
        template = EmailTemplate.objects.filter(
            **({"pk": value} if isinstance(value, int) else {"name": value})
        ).first()
        if template is None:
            raise StepError("template", f"no e-mail template {value!r}")
        if not template.variants.filter(current_version__isnull=False).exists():
            raise StepError("template", f"{template.name!r} has no saved content yet")
        send_time = config.get("send_time", "now")
        if send_time not in SEND_TIMES:
            raise StepError(
                "send_time", f'must be "now" or "{BEST_TIME}" (each customer\'s best time within 24 hours); got {send_time!r}'
            )
        return {"template": template.pk, **({"send_time": send_time} if send_time == BEST_TIME else {})}

    def run(self, context):
        # The frequency cap and quiet hours are decided when delivery claims the message, for every
        # marketing message alike (campaigns.pacing.pace): the step queues it and moves on. Only the
        # customer's best time is waited for here, outside quiet hours.
        if context.step.config.get("send_time") == BEST_TIME:
            zone = customer_zone(context.customer.get("timezone") or "")
            first_due = context.enrollment.step_started_at
            at = best_time_to_send(context.customer["pk"], context.now, zone.zone, first_due, context.campaign.quiet_hours)
            if at > context.now:
                return StepResult(f"waiting for the customer's best time, {at:%Y-%m-%d %H:%M} UTC", wait_until=at)
        return StepResult(context.effects.send_email(context, context.step.config["template"]))


@steps.register("wait")
class Wait(StepType):
    label = "Wait (a duration, or until a local time of day)"
    example = {"hours": 1}

    def clean(self, config, step_keys):
        if "until_local_time" in config:
            try:
                at = time.fromisoformat(config["until_local_time"])
            except (TypeError, ValueError):
                raise StepError("until_local_time", "must be HH:MM, e.g. 09:30") from None
            return {"until_local_time": at.strftime("%H:%M")}
        units = [unit for unit in ("minutes", "hours", "days") if unit in config]
        if len(units) != 1:
            raise StepError("hours", "give exactly one of minutes, hours, days or until_local_time")
        return {
            units[0]: _positive(config, units[0], {"minutes": 60 * 24 * 90, "hours": 24 * 365, "days": 365}[units[0]])
        }

    def run(self, context):
        started = context.enrollment.step_started_at or context.now
        config = context.step.config
        if "until_local_time" in config:
            zone = customer_zone(context.customer.get("timezone") or "")
            until = next_local_time(started, zone.zone, time.fromisoformat(config["until_local_time"]))
        else:
            unit, amount = next(iter(config.items()))
            until = started + timedelta(**{unit: amount})
        if context.now >= until:
            return StepResult("waited")
        return StepResult(f"waits until {until:%Y-%m-%d %H:%M} UTC", wait_until=until)


@steps.register("branch")
class Branch(StepType):
    label = "Branch on a condition"
    example = {"ordered_since_entry": True, "then": "exit", "else": "send-reminder"}

    def clean(self, config, step_keys):
        conditions = [name for name in BRANCH_CONDITIONS if name in config]
        if len(conditions) != 1:
            raise StepError("rule", f"give exactly one of {', '.join(BRANCH_CONDITIONS)}")
        condition = conditions[0]
        cleaned: dict[str, Any] = {"then": _key(config, "then", step_keys), "else": _key(config, "else", step_keys)}
        if condition == "rule":
            rule = config["rule"]
            if not isinstance(rule, dict) or "type" not in rule:
                raise StepError("rule", 'must be {"type": <segment rule type>, "config": {...}}')
            try:
                cleaned["rule"] = {
                    "type": rule["type"],
                    "config": rule_types.get(rule["type"]).clean(rule.get("config", {})),
                }
            except RuleError as error:
                raise StepError(f"rule.{error.field}", error.message) from None
        elif condition == "score":
            score = config["score"]
            threshold = score.get("at_least") if isinstance(score, dict) else None
            if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
                raise StepError("score.at_least", "must be a probability between 0 and 1")
            cleaned["score"] = {"task": str(score.get("task", "purchase_propensity")), "at_least": float(threshold)}
        elif condition == "forecast":
            cleaned["forecast"] = clean_condition(
                config["forecast"], lambda field, message: StepError(f"forecast.{field}", message)
            ).as_config()
        elif condition == "event_since_entry":
            try:
                cleaned["event_since_entry"] = check_event_name(config["event_since_entry"])
            except EventNameError as error:
                raise StepError("event_since_entry", str(error)) from None
        else:
            if config["ordered_since_entry"] is not True:
                raise StepError("ordered_since_entry", "must be true")
            cleaned["ordered_since_entry"] = True
        return cleaned

    def targets(self, config):
        return [config["then"], config["else"]]

    def event_names(self, config):
        if "event_since_entry" in config:
            return [config["event_since_entry"]]
        if "rule" in config:
            return rule_types.get(config["rule"]["type"]).event_names(config["rule"]["config"])
        return []

    def run(self, context):
        config, customer_id = context.step.config, context.customer["pk"]
        since = context.enrollment.entered_at
        if "rule" in config:
            rule = config["rule"]
            condition = rule_types.get(rule["type"]).condition(rule["config"], context.now)
            holds = Customer.objects.filter(Q(pk=customer_id) & condition).exists()
            described = f"rule {rule['type']}"
        elif "score" in config:
            version = ModelVersion.objects.active(config["score"]["task"]).first()
            holds = (
                version is not None
                and Score.objects.filter(
                    model_version=version, customer_id=customer_id, probability__gte=config["score"]["at_least"]
                ).exists()
            )
            described = f"{config['score']['task']} score at least {config['score']['at_least']}"
        elif "forecast" in config:
            holds, described = _forecast_holds(config["forecast"], context)
        elif "event_since_entry" in config:
            holds = Event.objects.filter(
                customer_id=customer_id,
                name=config["event_since_entry"],
                occurred_at__gte=since,
                occurred_at__lte=context.now,
            ).exists()
            described = f"{config['event_since_entry']} since entering"
        else:
            holds = (
                Order.objects.filter(customer_id=customer_id, placed_at__gte=since, placed_at__lte=context.now)
                .exclude(status=OrderStatus.CANCELLED)
                .exists()
            )
            described = "ordered since entering"
        return StepResult(
            f"{described}: {'yes' if holds else 'no'}", next_key=config["then"] if holds else config["else"]
        )


def _forecast_holds(config: dict[str, Any], context: StepContext) -> tuple[bool, str]:
    """Tell whether the active sales forecast of the condition's category (or the enrollment's) meets it, and why."""
    condition = clean_condition(config, lambda field, message: StepError(f"forecast.{field}", message))
    category = condition.category or context.enrollment.trigger_data.get("category")
    if not category:
        return False, "forecast: no category named, and the enrollment did not start from one"
    version = ModelVersion.objects.active(SALES_FORECAST).first()
    trend = category_trend(version, category, condition.weeks) if version is not None else None
    if trend is None:
        return False, "no active sales forecast" if version is None else f"{version} does not forecast {category!r}"
    change = trend.change(condition.compared_to)
    measured = "no comparison" if change is None else f"{change:+.1f} %"
    return condition.holds(trend), f"forecast of {category} ({measured}) {condition.describe()}"


@steps.register("split")
class Split(StepType):
    label = "Split into weighted variants (A/B)"
    example = {
        "variants": [{"name": "A", "weight": 50, "then": "send-a"}, {"name": "B", "weight": 50, "then": "send-b"}]
    }

    def clean(self, config, step_keys):
        variants = config.get("variants")
        if not isinstance(variants, list) or len(variants) < 2:
            raise StepError("variants", "must list at least two variants, each with name, weight and then")
        cleaned = []
        for index, variant in enumerate(variants):
            if not isinstance(variant, dict) or not isinstance(variant.get("name"), str) or not variant["name"]:
                raise StepError(f"variants[{index}].name", "must be non-empty text")
            weight = variant.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
                raise StepError(f"variants[{index}].weight", "must be a whole number from 1 to 1000")
            cleaned.append({"name": variant["name"], "weight": weight, "then": _key(variant, "then", step_keys)})
        return {"variants": cleaned}

    def targets(self, config):
        return [variant["then"] for variant in config["variants"]]

    def run(self, context):
        variants = context.step.config["variants"]
        # The same enrollment lands in the same variant however often the step runs.
        digest = hashlib.sha256(f"{context.enrollment.pk}:{context.step.pk}".encode()).digest()
        point = int.from_bytes(digest[:8]) % sum(variant["weight"] for variant in variants)
        for variant in variants:
            point -= variant["weight"]
            if point < 0:
                context.enrollment.variant = variant["name"]
                return StepResult(f"variant {variant['name']}", next_key=variant["then"])
        raise AssertionError("weights cover every point")


@steps.register("update_attribute")
class UpdateAttribute(StepType):
    label = "Update a customer attribute"
    example = {"field": "attributes.winback_offer", "value": "10-percent"}

    def clean(self, config, step_keys):
        field = config.get("field")
        if not isinstance(field, str) or not (
            field in UPDATABLE_FIELDS or (field.startswith("attributes.") and len(field) > 11)
        ):
            raise StepError("field", f"must be attributes.<name> or one of {', '.join(UPDATABLE_FIELDS)}")
        if "value" not in config:
            raise StepError("value", "is required (null removes an attribute)")
        if field in UPDATABLE_FIELDS and not isinstance(config["value"], str):
            raise StepError("value", f"{field} takes text")
        return {"field": field, "value": config["value"]}

    def run(self, context):
        context.effects.update_customer(context, context.step.config["field"], context.step.config["value"])
        return StepResult(f"set {context.step.config['field']}")


class _Membership(StepType):
    add: ClassVar[bool]

    def clean(self, config, step_keys):
        return {"segment": _static_segment(config)}

    def run(self, context):
        context.effects.change_membership(context, context.step.config["segment"], add=self.add)
        return StepResult(f"{'added to' if self.add else 'removed from'} segment {context.step.config['segment']}")


@steps.register("add_to_segment")
class AddToSegment(_Membership):
    label = "Add to a static segment"
    example = {"segment": "Win-back offered"}
    add = True


@steps.register("remove_from_segment")
class RemoveFromSegment(_Membership):
    label = "Remove from a static segment"
    example = {"segment": "Win-back offered"}
    add = False


def webhook_host_problem(url: str) -> str:
    """Return why a webhook URL may not be called (its host is not in WEBHOOK_ALLOWED_HOSTS), or ''."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if not host:
        return "names no host"
    for allowed in settings.WEBHOOK_ALLOWED_HOSTS:
        allowed = allowed.lower()
        # ".example.com" admits the domain and every subdomain; a plain name admits itself only.
        if host == allowed.lstrip(".") or (allowed.startswith(".") and host.endswith(allowed)):
            return ""
    allowed_hosts = ", ".join(settings.WEBHOOK_ALLOWED_HOSTS) or "none: the list is empty"
    return f"host {host!r} is not in WEBHOOK_ALLOWED_HOSTS ({allowed_hosts})"


@steps.register("webhook")
class Webhook(StepType):
    label = "Call a webhook (signed, retried)"
    example = {"url": "https://crm.example.com/hooks/kairos"}

    def clean(self, config, step_keys):
        url = config.get("url")
        if not isinstance(url, str) or not url.startswith("https://"):
            raise StepError("url", "must be an https:// address")
        problem = webhook_host_problem(url)
        if problem:
            raise StepError("url", problem)
        return {"url": url}

    def run(self, context):
        body = {
            "campaign": context.campaign.name,
            "step": context.step.key,
            "customer": context.customer.get("external_id", ""),
            "email": context.customer.get("email", ""),
            "entered_at": context.enrollment.entered_at.isoformat(),
            "trigger": context.enrollment.trigger_data,
        }
        # Checked again at the call: the allow-list may have shrunk since the step was saved.
        problem = webhook_host_problem(context.step.config["url"])
        if problem:
            return StepResult(f"webhook refused: {problem}")
        ok, detail = context.effects.call_webhook(context, context.step.config["url"], body)
        attempt = context.enrollment.step_attempts + 1
        if ok:
            return StepResult(f"webhook: {detail}")
        if attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
            return StepResult(f"webhook failed after {attempt} attempts: {detail}")
        context.enrollment.step_attempts = attempt
        return StepResult(
            f"webhook attempt {attempt} failed: {detail}",
            wait_until=context.now + timedelta(seconds=WEBHOOK_RETRY_BASE_S * 2 ** (attempt - 1)),
        )


@steps.register("exit")
class Exit(StepType):
    label = "Exit the campaign"
    example = {}

    def run(self, context):
        return StepResult("exited", exit=True)
