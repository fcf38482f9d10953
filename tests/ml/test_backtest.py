"""An orders-only log, as a shop exports it, through training, scoring, export and backtest; and backtest refusals."""

import csv
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from marketing.imports import import_file
from marketing.models import Customer, Order
from ml.models import Backtest, ModelStatus, ModelVersion, Score

START = date(2024, 1, 1)
DAYS = 540  # a year and a half, like the transaction logs shops hand over
BUYERS = 700
AS_OF = "2025-03-01"
LOG_MAPPING = {"customer": "customer", "placed_at": "date", "total": "amount"}

pytestmark = pytest.mark.django_db


def write_order_log(path: Path, seed: int = 5) -> Path:
    """Write a transaction log of customer id, date and amount: buyers who join over the whole history and drift away.

    Each buyer's first order falls on a day of the history; they then order at a rate of their own and,
    after each order, stop for good with a chance of their own (the BG/NBD story), with amounts around
    a typical basket of their own.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(1, BUYERS + 1):
        rate, dropout, basket = rng.gamma(0.6, 1 / 25), rng.beta(1.0, 3.0), rng.lognormal(3.4, 0.5)
        day = float(rng.integers(0, DAYS - 30))
        while day < DAYS:
            rows.append((f"{number:05d}", START + timedelta(days=int(day)), round(basket * rng.lognormal(0, 0.3), 2)))
            if rng.random() < dropout:
                break
            day += rng.exponential(1 / rate)
    rows.sort(key=lambda row: (row[1], row[0]))
    with open(path, "w") as handle:
        handle.write("customer    date          amount\n")
        for customer, day, amount in rows:
            handle.write(f"{customer:<12}{day:%Y%m%d}    {amount:>8.2f}\n")
    return path


@pytest.fixture
def imported_log(tmp_path, settings):
    settings.ML_MIN_BUYERS = 100
    log = write_order_log(tmp_path / "transactions.txt")
    report = import_file("orders", log, mapping=LOG_MAPPING, delimiter="whitespace", date_format="%Y%m%d")
    assert report.rejected == 0 and report.customers_created == BUYERS
    return log


# Committed for real: scoring hands its chunks to tasks after commit, and the import writes on its own connection.
@pytest.mark.django_db(transaction=True)
def test_an_orders_only_log_is_trained_scored_exported_and_backtested_end_to_end(imported_log, tmp_path):
    as_of = datetime(2025, 3, 1, tzinfo=UTC)
    known = Customer.objects.known_at(as_of).count()
    assert 0 < known < BUYERS  # customers join over the whole history, not at the import

    trained = StringIO()
    call_command("train_propensity", "--as-of", AS_OF, "--activate", "--force", stdout=trained)
    scored = StringIO()
    call_command("score_customers", "--as-of", AS_OF, stdout=scored, stderr=StringIO())
    call_command("export_scores", str(tmp_path / "scores.csv"), stdout=StringIO())
    backtested = StringIO()
    call_command("backtest_propensity", "--as-of", AS_OF, stdout=backtested)

    version = ModelVersion.objects.get(status=ModelStatus.ACTIVE)
    assert "model   recency  logistic    BG/NBD" in trained.getvalue()
    assert f"Scored {known:,} customers" in scored.getvalue()
    with open(tmp_path / "scores.csv") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == Score.objects.filter(model_version=version).count() == known
    assert {row["external_id"] for row in exported} == set(
        Customer.objects.known_at(as_of).values_list("external_id", flat=True)
    )
    backtest = Backtest.objects.get()
    assert (backtest.as_of, backtest.horizon_days, backtest.customers) == (as_of, 90, known)
    assert backtest.positives == (
        Order.objects.filter(
            placed_at__gte=as_of,
            placed_at__lt=as_of + timedelta(days=90),
            customer__in=Customer.objects.known_at(as_of),
        )
        .values("customer")
        .distinct()
        .count()
    )
    assert set(backtest.metrics) == {"model", "recency", "logistic", "bgnbd"}
    assert (
        f"{known:,} customers known then, {backtest.positives:,} ordered within 90 days after" in backtested.getvalue()
    )


def test_a_backtest_whose_outcome_window_passes_the_last_order_is_refused_saying_why(imported_log):
    last = Order.objects.order_by("-placed_at").values_list("placed_at", flat=True).first()

    with pytest.raises(CommandError) as refused:
        call_command("backtest_propensity", "--as-of", "2025-05-01", stdout=StringIO())

    assert str(refused.value) == (
        f"cannot backtest at 2025-05-01: 2025-05-01 + 90 days = 2025-07-30, past the last stored order "
        f"({last:%Y-%m-%d %H:%M} UTC): who orders within the horizon is not known yet; choose a date on or before "
        f"{last - timedelta(days=90):%Y-%m-%d}"
    )
    assert not ModelVersion.objects.exists()
    assert not Backtest.objects.exists()


def test_a_backtest_with_too_little_history_before_the_date_names_the_minimums(imported_log):
    with pytest.raises(CommandError, match="not enough data before --as-of to train:\n- order history covers"):
        call_command("backtest_propensity", "--as-of", "2024-04-01", stdout=StringIO())


def test_the_version_page_and_the_backtest_list_show_the_backtest(imported_log, admin_client):
    call_command("backtest_propensity", "--as-of", AS_OF, stdout=StringIO())
    backtest = Backtest.objects.get()

    version_page = admin_client.get(reverse("admin:ml_modelversion_change", args=[backtest.model_version_id]))
    listing = admin_client.get(reverse("admin:ml_backtest_changelist"))
    detail = admin_client.get(reverse("admin:ml_backtest_change", args=[backtest.pk]))

    assert version_page.status_code == listing.status_code == detail.status_code == 200
    row = "".join(
        f"<td>{backtest.metrics[name]['roc_auc']:.4f}</td>" for name in ("model", "recency", "logistic", "bgnbd")
    )
    assert f"<tr><th>ROC AUC</th>{row}<td>higher is better</td></tr>" in version_page.content.decode()
    assert f"<tr><th>ROC AUC</th>{row}<td>higher is better</td></tr>" in detail.content.decode()
    assert "Backtest of purchase_propensity v1 (candidate) as of 2025-03-01" in listing.content.decode()
    assert detail.content.decode().count('<svg xmlns="http://www.w3.org/2000/svg" width="360"') == 3
