"""Train, judge, store and read send-time versions: the Django shell around `ml.send_times`.

Training reads a year of opens and clicks by people (machine opens are their own event and never read),
judges the ranking fitted before a split 30 days before `as_of` on each customer's next engagement after
it, against the shop-wide best hour, then refits on the year before `as_of` and stores every engaged
customer's hours under a new version. Customers without a row get the shop-wide pattern of the version.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction

from marketing.models import Event
from ml.models import SEND_TIMES, ModelVersion, SendTime
from ml.registry import ActivationRefused, activate_version
from ml.send_times import (
    HOURS_PER_WEEK,
    best_moment,
    fit_send_times,
    judge_send_times,
    local_hours_of_week,
    rank_of,
)
from ml.training import NotEnoughData

ENGAGEMENTS = ("email_opened", "email_clicked")
MIN_ENGAGEMENTS = 100
MIN_JUDGED_CUSTOMERS = 20
WRITE_BATCH = 2_000
# Tried on the 30 days before the judged window; the best is kept.
PRIOR_STRENGTHS = (2.0, 5.0, 20.0, 100.0)
WEEKLY_MINIMUMS = (10, 30)


def zone_name(name: str) -> str:
    """Return the customer's IANA zone, or the shop's when it is blank or unknown."""
    if name:
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return settings.TIME_ZONE


def read_engagements(since: datetime, before: datetime) -> pd.DataFrame:
    """Return customer, UTC moment and local hour of the week of every open or click by a person in [since, before)."""
    rows = list(
        Event.objects.filter(name__in=ENGAGEMENTS, occurred_at__gte=since, occurred_at__lt=before)
        .order_by("occurred_at", "pk")
        .values_list("customer_id", "occurred_at", "customer__timezone")
        .iterator(20_000)
    )
    frame = pd.DataFrame(rows, columns=["customer", "at", "zone"])
    if frame.empty:
        return frame.assign(hour=pd.Series(dtype=np.int64))
    frame["zone"] = frame["zone"].fillna("").map(zone_name)
    frame["hour"] = local_hours_of_week(frame["at"], frame["zone"])
    return frame


@dataclass(frozen=True)
class SendTimeOptions:
    as_of: datetime
    activate: bool = False
    force: bool = False


def train_send_times(options: SendTimeOptions) -> ModelVersion:
    """Judge the send-time ranking on the 30 days after a split, refit it as of `as_of` and store it."""
    as_of, window = options.as_of, settings.ML_RECOMMEND_EVALUATION_DAYS
    history_days = settings.ML_SEND_TIME_HISTORY_DAYS
    split = as_of - timedelta(days=window)
    past = read_engagements(split - timedelta(days=history_days), split)
    future = read_engagements(split, as_of).drop_duplicates("customer", keep="first")
    reasons = []
    if len(past) < MIN_ENGAGEMENTS:
        reasons.append(f"{len(past)} opens and clicks by people before {split:%Y-%m-%d}; at least {MIN_ENGAGEMENTS} needed")
    if len(future) < MIN_JUDGED_CUSTOMERS:
        reasons.append(
            f"{len(future)} customers opened or clicked in the {window} days before {as_of:%Y-%m-%d}, the judged "
            f"window; at least {MIN_JUDGED_CUSTOMERS} needed"
        )
    if reasons:
        raise NotEnoughData(reasons)
    strength, minimum, tuning = tune(split, window, history_days)
    fitted = fit_send_times(past["customer"].to_numpy(np.int64), past["hour"].to_numpy(np.int64), strength, minimum)
    judgement = judge_send_times(fitted, future["customer"].to_numpy(np.int64), future["hour"].to_numpy(np.int64))
    recent = read_engagements(as_of - timedelta(days=history_days), as_of)
    final = fit_send_times(recent["customer"].to_numpy(np.int64), recent["hour"].to_numpy(np.int64), strength, minimum)
    metrics = {
        **judgement.as_dict(),
        "split": split.isoformat(),
        "window_days": window,
        "weekly_customers": int(final.weekly.sum()),
        "daily_customers": int((~final.weekly).sum()),
        "shop_best_hours": final.shop_hours[:3],
        "tuning": tuning,
    }
    beats = judgement.model_rate > judgement.shop_rate
    with transaction.atomic():
        taken = ModelVersion.objects.select_for_update().filter(task=SEND_TIMES).values_list("version", flat=True)
        version = ModelVersion.objects.create(
            task=SEND_TIMES,
            version=max(taken, default=0) + 1,
            horizon_days=window,
            as_of=as_of,
            training_from=as_of - timedelta(days=history_days),
            training_to=split,
            feature_names=list(ENGAGEMENTS),
            params={"prior_strength": strength, "weekly_minimum": minimum, "shop_hours": final.shop_hours},
            metrics=metrics,
            beats_baselines=beats,
        )
        SendTime.objects.bulk_create(
            (
                SendTime(model_version=version, customer_id=customer, hours=hours, weekly=bool(weekly), engagements=count)
                for customer, hours, weekly, count in zip(
                    final.customers.tolist(), final.hours, final.weekly.tolist(), final.engagements.tolist(), strict=True
                )
            ),
            batch_size=WRITE_BATCH,
        )
    if options.activate:
        activate_send_times(version, force=options.force)
    return version


def tune(split: datetime, window: int, history_days: int) -> tuple[float, int, list[dict]]:
    """Choose the shrinkage and the weekly minimum on the window before the split; return them and every try."""
    inner = split - timedelta(days=window)
    past = read_engagements(inner - timedelta(days=history_days), inner)
    future = read_engagements(inner, split).drop_duplicates("customer", keep="first")
    tries = []
    best = (settings.ML_SEND_TIME_PRIOR_STRENGTH, settings.ML_SEND_TIME_WEEKLY_MIN_ENGAGEMENTS, -1.0)
    if len(past) < MIN_ENGAGEMENTS or len(future) < MIN_JUDGED_CUSTOMERS:
        return best[0], best[1], tries
    for strength in PRIOR_STRENGTHS:
        for minimum in WEEKLY_MINIMUMS:
            fitted = fit_send_times(past["customer"].to_numpy(np.int64), past["hour"].to_numpy(np.int64), strength, minimum)
            rate = judge_send_times(
                fitted, future["customer"].to_numpy(np.int64), future["hour"].to_numpy(np.int64)
            ).model_rate
            tries.append({"prior_strength": strength, "weekly_minimum": minimum, "model": round(rate, 4)})
            if rate > best[2]:
                best = (strength, minimum, rate)
    return best[0], best[1], tries


def activate_send_times(version: ModelVersion, force: bool = False) -> ModelVersion:
    if not force and not version.beats_baselines:
        raise ActivationRefused(
            f"{version} does not beat the shop-wide best hour ({version.metrics['model']:.1%} vs "
            f"{version.metrics['shop_wide']:.1%}); activate it with force to override"
        )
    return activate_version(version, force=True)


def send_time_table(metrics: dict) -> list[str]:
    """Return the evaluation as text lines."""
    return [
        f"{'':<26} {'within 1 h of next engagement':>30}",
        f"{'Kairos send time':<26} {metrics['model']:>30.1%}",
        f"{'shop-wide best hour':<26} {metrics['shop_wide']:>30.1%}",
    ]


def send_time_rankings(customer_ids: list[int]) -> tuple[dict[int, Callable[[int], int]], Callable[[int], int]] | None:
    """Return each customer's hour ranking under the active version and the shop-wide one, or None without one."""
    version = ModelVersion.objects.active(SEND_TIMES).first()
    if version is None:
        return None
    shop_hours = version.params.get("shop_hours") or list(range(HOURS_PER_WEEK))
    rows = SendTime.objects.filter(model_version=version, customer_id__in=customer_ids).values_list(
        "customer_id", "hours", "weekly"
    )
    return {customer: rank_of(hours, weekly, shop_hours) for customer, hours, weekly in rows}, rank_of(
        [], True, shop_hours
    )


def best_send_moment(
    customer_id: int,
    now: datetime,
    zone: ZoneInfo,
    window_start: datetime | None = None,
    allowed: Callable[[datetime], bool] = lambda local: True,
) -> datetime:
    """Return when to send to the customer: their best allowed local hour within 24 hours of `window_start`.

    Without an active send-time version there is nothing to go by, and the answer is now.
    """
    rankings = send_time_rankings([customer_id])
    if rankings is None:
        return now
    own, shop = rankings
    return best_moment(now, zone, own.get(customer_id, shop), window_start, allowed)
