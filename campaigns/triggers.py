"""What starts a customer on a campaign: a registry of trigger types, each with a config checked at save.

A trigger type answers one of two questions. Event triggers say whether a stored event matches
(`matches_event`), and the engine asks them right after the events are committed. Polled
triggers are asked by the engine's beat tick what was committed after the campaign's cursor
(`candidates_after`): an id or version of their source that only increases and is committed in
order (a segment's refresh version, a scoring run, a forecast version), never a time stamp, which
a transaction can write before a tick and commit after it. They name customers as a SQL set
(`Audience`) that the engine admits with one INSERT … SELECT, or as a short list of `Candidate`s.
`candidates(since, now)` answers the same for a window of time, for simulations that replay days.
Other apps add trigger types in their own `triggers.py`, which the campaigns app discovers at start.
"""

from abc import ABC
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

from django.db.models import F, Max, Q, QuerySet

from campaigns.forecast_conditions import clean_condition
from campaigns.registry import ConfigError, Registry
from marketing.event_names import EventNameError, check_event_name
from marketing.models import Customer, Segment, SegmentChange, SegmentChangeKind
from ml.buyers import likely_buyers
from ml.forecast_trends import category_trends
from ml.intents import INTENTS, SENTIMENTS
from ml.models import SALES_FORECAST, ModelStatus, ModelVersion, RunStatus, Score, ScoringRun


class TriggerError(ConfigError):
    """A trigger's configuration is wrong; `field` names the key at fault."""


@dataclass(frozen=True)
class StoredEvent:
    """An event as triggers see it: plain data."""

    id: int
    customer_id: int
    name: str
    occurred_at: datetime
    properties: dict[str, Any]


@dataclass(frozen=True)
class Candidate:
    customer_id: int
    data: dict[str, Any]
    event_id: int | None = None  # the event that named them: one enrollment per (campaign, event), ever


@dataclass(frozen=True)
class Audience:
    """Customers named by a query: `rows` yields `customer_id` (and the `per_row` columns); `data` is shared.

    Each enrollment's trigger data is `data` plus, for each name in `per_row`, that column of its row.
    """

    rows: QuerySet
    data: dict[str, Any]
    per_row: tuple[str, ...] = ()


def everyone() -> QuerySet:
    """Every customer, as the rows of an Audience."""
    return Customer.objects.values(customer_id=F("pk"))


class TriggerType(ABC):
    """A kind of trigger. Subclasses register with `@triggers.register("key")`."""

    key: ClassVar[str]
    label: ClassVar[str]
    example: ClassVar[dict[str, Any]]
    polled: ClassVar[bool] = False
    # A polled trigger that looks back on its first poll (a schedule, a date) gets since=None then;
    # the others start from the moment the campaign is launched.
    looks_back: ClassVar[bool] = False
    # Polled triggers that read after a cursor (an id or version that only increases and is committed in
    # order, DESIGN principle 7) set this: the engine then calls `candidates_after` with the campaign's
    # cursor, None at first, and keeps the cursor it returns.
    cursored: ClassVar[bool] = False

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        """Return the config validated and normalised, or raise TriggerError naming the bad key."""
        return {}

    def matches_event(self, config: dict[str, Any], event: StoredEvent) -> bool:
        """Return whether a stored event starts a customer on the campaign (event triggers)."""
        return False

    def event_names(self, config: dict[str, Any]) -> list[str]:
        """Return the event names the (cleaned) config refers to, so saving can warn of names never received."""
        return []

    def candidates(self, config: dict[str, Any], since: datetime | None, now: datetime) -> Iterable[Candidate]:
        """Return the customers to enroll for what happened in (since, now] (polled triggers)."""
        return ()

    def start_cursor(self, config: dict[str, Any], now: datetime) -> int | None:
        """Return the cursor of what exists at launch, so a trigger that does not look back starts after it."""
        return None

    def candidates_after(
        self, config: dict[str, Any], cursor: int | None, now: datetime
    ) -> "tuple[Audience | list[Candidate], int | None]":
        """Return the customers to enroll for what was committed after `cursor`, and the cursor reached
        (cursored triggers)."""
        return [], cursor


triggers: Registry[TriggerType] = Registry("trigger", lambda message: TriggerError("trigger_type", message))


def _text(config: dict, key: str, *, required: bool = True) -> str:
    value = config.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise TriggerError(key, "must be non-empty text")
    return value.strip()


def _whole(config: dict, key: str, *, minimum: int, maximum: int, default: int | None = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise TriggerError(key, f"must be a whole number from {minimum} to {maximum}")
    return value


def _segment(config: dict) -> Segment:
    value = config.get("segment")
    segment = None
    if isinstance(value, int) and not isinstance(value, bool):
        segment = Segment.objects.filter(pk=value).first()
    elif isinstance(value, str) and value.strip():
        segment = Segment.objects.filter(name=value.strip()).first()
    if segment is None:
        raise TriggerError("segment", f"no segment {value!r}; give its name or id")
    return segment


def _datetime(config: dict, key: str) -> datetime:
    value = config.get(key)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise TriggerError(
            key, f"must be an ISO 8601 time with an offset, e.g. 2026-12-01T09:00:00+01:00 (got {value!r})"
        )
    return moment


@triggers.register("event")
class EventReceived(TriggerType):
    label = "An event is received"
    example = {"event": "cart_added", "properties": {"currency": "EUR"}}

    def clean(self, config):
        try:
            name = check_event_name(config.get("event"))
        except EventNameError as error:
            raise TriggerError("event", str(error)) from None
        properties = config.get("properties", {})
        if not isinstance(properties, dict):
            raise TriggerError("properties", "must be an object of property: value pairs the event must carry")
        return {"event": name, "properties": properties}

    def event_names(self, config):
        return [config["event"]]

    def matches_event(self, config, event):
        return event.name == config["event"] and all(
            event.properties.get(key) == value for key, value in config["properties"].items()
        )


MESSAGE_RECEIVED_EVENT = "message_received"


def _probability(config: dict, key: str, default: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise TriggerError(key, f"must be a probability from 0 to 1 (got {value!r})")
    return float(value)


@triggers.register("message_received")
class MessageReceived(TriggerType):
    """A customer's message was read: its intent (one, several or "*"), a minimum confidence, optionally a sentiment.

    Only messages Kairos may act on automatically match (confident enough, in a language the model
    reads, from a known customer); the others wait for a person whatever a campaign says.
    With "match": "any", the intent or the sentiment suffices (a complaint, or any strongly negative message).
    """

    label = "A customer's message is understood (intent, confidence, sentiment)"
    example = {"intent": "order_status", "min_confidence": 0.7}

    def clean(self, config):
        intent = config.get("intent")
        if intent == "*":
            intents: str | list[str] = "*"
        else:
            intents = [intent] if isinstance(intent, str) else intent
            if not isinstance(intents, list) or not intents or any(item not in INTENTS for item in intents):
                raise TriggerError(
                    "intent", f'must be "*", one of {", ".join(INTENTS)}, or a list of them (got {intent!r})'
                )
        cleaned: dict[str, Any] = {"intent": intents, "min_confidence": _probability(config, "min_confidence", 0.7)}
        sentiment = config.get("sentiment")
        if sentiment is not None:
            if sentiment not in SENTIMENTS:
                raise TriggerError("sentiment", f"must be one of {', '.join(SENTIMENTS)} (got {sentiment!r})")
            cleaned["sentiment"] = sentiment
            cleaned["min_sentiment_confidence"] = _probability(config, "min_sentiment_confidence", 0.0)
        match = config.get("match", "all")
        if match not in ("all", "any"):
            raise TriggerError("match", 'must be "all" (intent and sentiment) or "any" (either)')
        if match == "any" and sentiment is None:
            raise TriggerError("match", '"any" needs a sentiment to match instead of the intent')
        cleaned["match"] = match
        return cleaned

    def matches_event(self, config, event):
        properties = event.properties
        if event.name != MESSAGE_RECEIVED_EVENT or not properties.get("automatic"):
            return False
        intents = config["intent"]
        intent_holds = (intents == "*" or properties.get("intent") in intents) and (
            properties.get("confidence") or 0
        ) >= config["min_confidence"]
        if "sentiment" not in config:
            return intent_holds
        sentiment_holds = properties.get("sentiment") == config["sentiment"] and (
            properties.get("sentiment_confidence") or 0
        ) >= config["min_sentiment_confidence"]
        return intent_holds or sentiment_holds if config["match"] == "any" else intent_holds and sentiment_holds


class _SegmentChangeTrigger(TriggerType):
    """Entries or exits recorded by a segment's refreshes, read after the last refresh version looked at.

    A refresh writes its changes and the segment's new version in one transaction holding the
    segment's row lock, so versions commit in order: every change up to the version read is in.
    """

    polled = True
    cursored = True
    kind: ClassVar[str]

    def clean(self, config):
        return {"segment": _segment(config).pk}

    def start_cursor(self, config, now):
        return Segment.objects.filter(pk=config["segment"]).values_list("version", flat=True).first() or 0

    def candidates_after(self, config, cursor, now):
        reached = Segment.objects.filter(pk=config["segment"]).values_list("version", flat=True).first()
        if reached is None or (cursor is not None and reached <= cursor):
            return [], cursor
        # A customer who entered, left and entered again since the last poll is named once, for the last time.
        rows = (
            SegmentChange.objects.filter(
                segment_id=config["segment"], kind=self.kind, version__gt=cursor or 0, version__lte=reached
            )
            .values("customer_id")
            .annotate(version=Max("version"))
        )
        return Audience(rows, {"segment": config["segment"]}, per_row=("version",)), reached

    def candidates(self, config, since, now):
        changes = SegmentChange.objects.filter(segment_id=config["segment"], kind=self.kind, at__lte=now)
        if since is not None:
            changes = changes.filter(at__gt=since)
        for customer_id, version in changes.order_by("at", "pk").values_list("customer_id", "version"):
            yield Candidate(customer_id, {"segment": config["segment"], "version": version})


@triggers.register("segment_entered")
class SegmentEntered(_SegmentChangeTrigger):
    label = "A customer enters a segment"
    example = {"segment": "Lapsing buyers"}
    kind = SegmentChangeKind.ENTERED


@triggers.register("segment_left")
class SegmentLeft(_SegmentChangeTrigger):
    label = "A customer leaves a segment"
    example = {"segment": "Loyal buyers"}
    kind = SegmentChangeKind.EXITED


@triggers.register("schedule")
class Scheduled(TriggerType):
    label = "At a time (one-off broadcast to the audience)"
    example = {"at": "2026-12-01T09:00:00+01:00"}
    polled = True
    looks_back = True
    cursored = True  # the cursor is 1 once the broadcast fired: it fires once, however late the tick

    def clean(self, config):
        return {"at": _datetime(config, "at").isoformat()}

    def candidates_after(self, config, cursor, now):
        if cursor is not None or datetime.fromisoformat(config["at"]) > now:
            return [], cursor
        return Audience(everyone(), {"scheduled_at": config["at"]}), 1

    def candidates(self, config, since, now):
        at = datetime.fromisoformat(config["at"])
        if at > now or (since is not None and at <= since):
            return
        for customer_id in Customer.objects.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=5_000):
            yield Candidate(customer_id, {"scheduled_at": config["at"]})


CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def parse_crontab(expression: str) -> dict[str, str]:
    """Split a five-field cron expression ("0 9 * * 1") into its named fields, refusing one Celery cannot run."""
    from celery.schedules import crontab

    fields = expression.split()
    if len(fields) != len(CRONTAB_FIELDS):
        raise TriggerError("crontab", f"needs 5 fields (minute hour day-of-month month day-of-week), e.g. '0 9 * * 1'; got {expression!r}")
    named = dict(zip(CRONTAB_FIELDS, fields, strict=True))
    try:
        crontab(**named)
    except (ValueError, TypeError) as error:
        raise TriggerError("crontab", f"{expression!r} is not a schedule: {error}") from None
    return named


@triggers.register("recurring")
class Recurring(TriggerType):
    label = "On a recurring schedule (everyone in the audience, each time)"
    example = {"crontab": "0 9 * * 1"}

    def clean(self, config):
        expression = " ".join(_text(config, "crontab").split())
        parse_crontab(expression)
        return {"crontab": expression}

    def audience(self, config: dict[str, Any], now: datetime) -> Audience:
        """Return everyone, for the run of the crontab at `now`."""
        return Audience(everyone(), {"recurring": config["crontab"], "at": now.isoformat()})

    def candidates(self, config, since, now):
        for customer_id in Customer.objects.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=5_000):
            yield Candidate(customer_id, {"recurring": config["crontab"], "at": now.isoformat()})


@triggers.register("date_attribute")
class DateAttribute(TriggerType):
    label = "A date of the customer's (birthday, N days before or after a date)"
    example = {"field": "birth_date", "annual": True, "offset_days": 0}
    polled = True
    looks_back = True
    cursored = True  # the cursor is the day (its ordinal) last looked at: each day is looked at once

    def clean(self, config):
        field = _text(config, "field")
        if field != "birth_date" and not field.startswith("attributes."):
            raise TriggerError("field", "must be birth_date or attributes.<name> holding an ISO date")
        annual = config.get("annual", field == "birth_date")
        if not isinstance(annual, bool):
            raise TriggerError("annual", "must be true (every year, like a birthday) or false (once)")
        return {
            "field": field,
            "annual": annual,
            "offset_days": _whole(config, "offset_days", minimum=-365, maximum=365, default=0),
        }

    def candidates_after(self, config, cursor, now):
        today = now.date().toordinal()
        if cursor is not None and cursor >= today:
            return [], cursor
        return list(self.candidates(config, None, now)), today

    def candidates(self, config, since, now):
        # The customer's day is reached when today equals their date plus the offset; checked once a day.
        today = now.date()
        if since is not None and since.date() == today:
            return
        target = today - timedelta(days=config["offset_days"])
        field = config["field"]
        if field == "birth_date":
            customers = Customer.objects.filter(birth_date__isnull=False)
            if config["annual"]:
                customers = customers.filter(birth_date__month=target.month, birth_date__day=target.day)
            else:
                customers = customers.filter(birth_date=target)
            rows = customers.values_list("pk", "birth_date")
        else:
            key = field.removeprefix("attributes.")
            rows = []
            for pk, attributes in Customer.objects.filter(Q(attributes__has_key=key)).values_list("pk", "attributes"):
                try:
                    rows.append((pk, date.fromisoformat(str(attributes[key])[:10])))
                except ValueError:
                    continue
        for customer_id, day in rows:
            if day is None:
                continue
            if config["annual"] and field != "birth_date" and (day.month, day.day) != (target.month, target.day):
                continue
            if not config["annual"] and field != "birth_date" and day != target:
                continue
            yield Candidate(customer_id, {"field": field, "date": day.isoformat()})


@triggers.register("score_crossed")
class ScoreCrossed(TriggerType):
    label = "A model score reaches a threshold"
    example = {"task": "purchase_propensity", "at_least": 0.7}
    polled = True
    cursored = True  # the cursor is the last scoring run id up to which every run has finished

    def clean(self, config):
        task = _text(config, "task")
        threshold = config.get("at_least")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
            raise TriggerError("at_least", "must be a probability between 0 and 1")
        return {"task": task, "at_least": float(threshold)}

    def start_cursor(self, config, now):
        return _settled_runs(0)[0]

    def candidates_after(self, config, cursor, now):
        reached, done = _settled_runs(cursor or 0)
        version = ModelVersion.objects.active(config["task"]).first()
        # Scores are replaced per version, so only the last finished run of the active version still stands.
        runs = [run for run in done if version is not None and run[1] == version.pk]
        if not runs:
            return [], reached
        run_id, version_id, as_of = runs[-1]
        rows = Score.objects.filter(
            model_version_id=version_id, probability__gte=config["at_least"], scored_at=as_of
        ).values("customer_id", "probability")
        data = {"task": config["task"], "version": version_id, "run": run_id}
        return Audience(rows, data, per_row=("probability",)), reached

    def candidates(self, config, since, now):
        version = ModelVersion.objects.active(config["task"]).first()
        if version is None:
            return
        scores = Score.objects.filter(model_version=version, probability__gte=config["at_least"], scored_at__lte=now)
        if since is not None:
            scores = scores.filter(scored_at__gt=since)
        for customer_id, probability in scores.values_list("customer_id", "probability"):
            yield Candidate(customer_id, {"task": config["task"], "probability": probability, "version": version.pk})


def _settled_runs(cursor: int) -> tuple[int, list[tuple[int, int, datetime]]]:
    """Return the last scoring run id after `cursor` up to which every run has finished, and the done ones.

    Runs may finish out of order (two at once), so the cursor stops before the first run still running.
    """
    reached, done = cursor, []
    for run_id, status, version_id, as_of in (
        ScoringRun.objects.filter(pk__gt=cursor).order_by("pk").values_list("pk", "status", "model_version_id", "as_of")
    ):
        if status == RunStatus.RUNNING:
            break
        reached = run_id
        if status == RunStatus.DONE:
            done.append((run_id, version_id, as_of))
    return reached, done


@triggers.register("manual")
class Manual(TriggerType):
    label = "Enrolled by hand from the admin"
    example = {}


DEFAULT_LIKELY_BUYERS = 1_000
MAX_LIKELY_BUYERS = 100_000


@triggers.register("forecast_changed")
class ForecastChanged(TriggerType):
    """Each newly activated sales forecast is checked once: the cursor is the id of the last forecast
    version looked at, so a rollback to an older version fires nothing, and a forecast activated while
    the campaign was paused is still looked at when it resumes."""

    label = "A category's sales forecast moves (against last year or the previous forecast)"
    example = {
        "category": "books",
        "weeks": 4,
        "direction": "below",
        "percent": 10,
        "compared_to": "last_year",
        "likely_buyers": 500,
        "min_likelihood": 0.02,
    }
    polled = True
    looks_back = True  # a campaign launched today acts on today's forecast
    cursored = True

    def clean(self, config):
        condition = clean_condition(config, TriggerError, extra_keys=("likely_buyers", "min_likelihood"))
        limit = _whole(config, "likely_buyers", minimum=1, maximum=MAX_LIKELY_BUYERS, default=DEFAULT_LIKELY_BUYERS)
        floor = config.get("min_likelihood", 0.0)
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 <= floor < 1:
            raise TriggerError("min_likelihood", "must be a probability from 0 up to 1")
        return {**condition.as_config(), "likely_buyers": limit, "min_likelihood": float(floor)}

    def candidates_after(self, config, cursor, now):
        version = ModelVersion.objects.active(SALES_FORECAST).first()
        if version is None or (cursor is not None and version.pk <= cursor):
            return [], cursor
        return self._buyers(config, version, now), version.pk

    def candidates(self, config, since, now):
        # A simulation replays days, not cursors: the forecast activated within the day is looked at.
        version = ModelVersion.objects.filter(
            task=SALES_FORECAST, status=ModelStatus.ACTIVE, activated_at__lte=now
        ).first()
        if version is None or (since is not None and version.activated_at <= since):
            return []
        return self._buyers(config, version, now)

    def _buyers(self, config: dict[str, Any], version: ModelVersion, now: datetime) -> list[Candidate]:
        condition = clean_condition(
            {key: value for key, value in config.items() if key not in ("likely_buyers", "min_likelihood")},
            TriggerError,
        )
        chosen: dict[int, Candidate] = {}
        for trend in category_trends(version, condition.weeks, condition.category):
            if not condition.holds(trend):
                continue
            found = likely_buyers(trend.category, now, config["likely_buyers"], config["min_likelihood"])
            for buyer in found.buyers:
                held = chosen.get(buyer.customer_id)
                # A customer likely to buy in two slowing categories is pushed the one they fit best.
                if held is not None and held.data["likelihood"] >= buyer.likelihood:
                    continue
                chosen[buyer.customer_id] = Candidate(
                    buyer.customer_id,
                    {
                        "category": trend.category,
                        "forecast_version": version.pk,
                        "weeks": [week.isoformat() for week in trend.weeks],
                        "forecast_units": trend.forecast_units,
                        "compared_to": condition.compared_to,
                        "change_percent": trend.change(condition.compared_to),
                        "likelihood": buyer.likelihood,
                        "probability": buyer.probability,
                        "affinity": buyer.affinity,
                        "ranked_by": found.ranked_by,
                    },
                )
        return [chosen[customer_id] for customer_id in sorted(chosen)]
