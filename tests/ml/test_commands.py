"""The ML management commands: the exported CSV, training refusals with their minimums, and scoring from the shell."""

import re
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from marketing.models import Customer, OrderStatus
from ml.features import FEATURE_NAMES
from ml.models import ModelStatus, ModelVersion, RunStatus, Score, ScoringRun
from tests.factories import CustomerFactory, OrderFactory
from tests.ml.conftest import AS_OF

pytestmark = pytest.mark.django_db


@pytest.fixture
def exported_scores(make_version, booster) -> ModelVersion:
    """Three customers scored by the active v2, one of them also by the retired v1, and one never scored."""
    retired = make_version(booster, version=1, status=ModelStatus.RETIRED)
    active = make_version(booster, version=2, status=ModelStatus.ACTIVE)
    bea, ada, cyd = (CustomerFactory(external_id=external_id) for external_id in ("C-B", "C-A", "C-C"))
    CustomerFactory(external_id="C-0")
    Score.objects.bulk_create(
        [
            Score(customer=bea, model_version=active, probability=0.5, decile=1, scored_at=AS_OF),
            Score(customer=ada, model_version=active, probability=0.25, decile=4, scored_at=AS_OF),
            Score(customer=cyd, model_version=active, probability=0.123456789, decile=9, scored_at=AS_OF),
            Score(customer=ada, model_version=retired, probability=0.99, decile=1, scored_at=AS_OF),
        ]
    )
    return active


EXPORTED = "external_id,probability,decile\nC-A,0.250000,4\nC-B,0.500000,1\nC-C,0.123457,9\n"


def test_export_writes_the_active_versions_scores_by_external_id(exported_scores, tmp_path):
    path = tmp_path / "scores.csv"
    out = StringIO()

    call_command("export_scores", str(path), stdout=out)

    assert path.read_text(encoding="utf-8") == EXPORTED
    assert out.getvalue() == f"Wrote 3 scores of purchase_propensity v2 (active) to {path}.\n"


def test_export_to_standard_output(exported_scores):
    out = StringIO()

    call_command("export_scores", "-", stdout=out)

    assert out.getvalue() == EXPORTED


def test_export_without_an_active_model_is_refused(make_version, booster, tmp_path):
    make_version(booster, version=1, status=ModelStatus.RETIRED)

    with pytest.raises(CommandError) as raised:
        call_command("export_scores", str(tmp_path / "scores.csv"))

    assert str(raised.value) == "no active model: train one with train_propensity --activate, then score_customers"
    assert not (tmp_path / "scores.csv").exists()


def test_export_to_a_folder_that_does_not_exist_is_refused(exported_scores, tmp_path):
    path = tmp_path / "missing" / "scores.csv"

    with pytest.raises(CommandError) as raised:
        call_command("export_scores", str(path))

    assert str(raised.value) == f"cannot write {path}: No such file or directory"


@pytest.fixture
def minimums(settings):
    settings.ML_MIN_BUYERS = 200
    settings.ML_MIN_FEATURE_DAYS = 30
    settings.ML_MIN_RECENT_ORDERS = 10
    settings.ML_RECENT_DAYS = 30


def test_training_on_a_handful_of_customers_is_refused_with_every_unmet_minimum(minimums):
    # Three buyers; the first order 10 days before the cutoff; four kept orders within 30 days
    buyers = [CustomerFactory() for _ in range(3)]
    for customer, days in zip([*buyers, buyers[0]], (10, 8, 3, 1), strict=True):
        OrderFactory(customer=customer, placed_at=AS_OF - timedelta(days=days), total=Decimal("20.00"))
    OrderFactory(customer=CustomerFactory(), placed_at=AS_OF - timedelta(days=400), status=OrderStatus.CANCELLED)
    OrderFactory(customer=buyers[1], placed_at=AS_OF + timedelta(days=2))

    with pytest.raises(CommandError) as raised:
        call_command("train_propensity", "--as-of", "2024-07-01", "--horizon-days", "90")

    assert str(raised.value) == (
        "not enough data to train:\n"
        "- only 3 customers have ordered; at least 200 are needed\n"
        "- order history covers 10 days; at least 210 are needed (two horizons plus the shortest feature history)\n"
        "- 4 orders in the last 30 days; at least 10 are needed to trust that the history is current"
    )
    assert ModelVersion.objects.count() == 0


def test_training_on_an_empty_store_names_every_minimum(minimums):
    with pytest.raises(CommandError) as raised:
        call_command("train_propensity", "--as-of", "2024-07-01", "--horizon-days", "30")

    assert str(raised.value).splitlines() == [
        "not enough data to train:",
        "- only 0 customers have ordered; at least 200 are needed",
        "- order history covers 0 days; at least 90 are needed (two horizons plus the shortest feature history)",
        "- 0 orders in the last 30 days; at least 10 are needed to trust that the history is current",
    ]


def test_a_horizon_below_one_day_is_refused():
    with pytest.raises(CommandError) as raised:
        call_command("train_propensity", "--horizon-days", "0")

    assert str(raised.value) == "--horizon-days must be at least 1, not 0"


@pytest.mark.parametrize("command", ["train_propensity", "score_customers"])
def test_an_as_of_that_is_not_a_date_is_refused_by_name(command):
    with pytest.raises(CommandError) as raised:
        call_command(command, "--as-of", "nonsense")

    assert str(raised.value) == "--as-of 'nonsense' is not a date (YYYY-MM-DD) or an ISO 8601 moment"
    assert ModelVersion.objects.count() == ScoringRun.objects.count() == 0


def test_scoring_without_an_active_model_is_refused(make_version, booster):
    make_version(booster, version=1)

    with pytest.raises(CommandError) as raised:
        call_command("score_customers", "--as-of", "2024-07-01")

    assert str(raised.value) == "no active purchase_propensity model: train one with train_propensity --activate"
    assert ScoringRun.objects.count() == 0


def test_scoring_with_a_version_trained_on_other_features_is_refused(make_version, booster):
    make_version(booster, version=1, status=ModelStatus.ACTIVE, feature_names=[*FEATURE_NAMES, "age"])

    with pytest.raises(CommandError) as raised:
        call_command("score_customers")

    assert str(raised.value) == (
        "purchase_propensity v1 (active) was trained on other features than this code builds: missing age"
    )
    assert ScoringRun.objects.count() == 0


def test_scoring_without_waiting_plans_the_run_and_returns(settings, trained_version, shoppers):
    settings.ML_SCORING_CHUNK_CUSTOMERS = 4
    out = StringIO()

    call_command("score_customers", "--as-of", "2024-07-01", "--no-wait", stdout=out)

    run = ScoringRun.objects.get()
    assert out.getvalue() == (
        f"Scoring run {run.pk}: purchase_propensity v1 (active), 2 chunks, as of 2024-07-01 00:00.\n"
    )
    assert (run.as_of, run.status, run.chunks_total) == (AS_OF, RunStatus.RUNNING, 2)


@pytest.mark.django_db(transaction=True)
def test_scoring_waits_until_every_customer_is_scored(settings, trained_version, shoppers):
    settings.ML_SCORING_CHUNK_CUSTOMERS = 4
    out = StringIO()

    call_command("score_customers", "--as-of", "2024-07-01", stdout=out, stderr=StringIO())

    run = ScoringRun.objects.get()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"Scoring run {run.pk}: purchase_propensity v1 (active), 2 chunks, as of 2024-07-01 00:00."
    assert re.fullmatch(r"Scored 7 customers in \d+\.\d s; top-decile cut point 0\.\d{3}\.", lines[1])
    assert len(lines) == 2
    assert run.status == RunStatus.DONE
    assert sorted(Score.objects.values_list("customer_id", flat=True)) == sorted(
        Customer.objects.values_list("pk", flat=True)
    )


def test_export_neutralises_shop_ids_a_spreadsheet_would_run(make_version, booster):
    version = make_version(booster, version=1, status=ModelStatus.ACTIVE)
    customer = CustomerFactory(external_id="=CMD(1)")
    Score.objects.create(customer=customer, model_version=version, probability=0.5, decile=1, scored_at=AS_OF)
    out = StringIO()

    call_command("export_scores", "-", stdout=out)

    assert out.getvalue() == "external_id,probability,decile\n'=CMD(1),0.500000,1\n"
