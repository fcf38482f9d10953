"""Metrics of a probability model: hand-computed cases, sklearn as a cross-check, JSON-ready output."""

import json
import math
import re

import numpy as np
import pytest
from sklearn import metrics

from ml import evaluation


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    signal = rng.normal(size=1000)
    probability = 1 / (1 + np.exp(-(1.5 * signal - 2)))
    outcome = (rng.random(1000) < probability).astype(int)
    return outcome, probability


@pytest.mark.parametrize(
    ("p", "expected"),
    [([0.1, 0.2, 0.8, 0.9], 1.0), ([0.9, 0.8, 0.2, 0.1], 0.0), ([0.5, 0.5, 0.5, 0.5], 0.5)],
)
def test_roc_auc_of_perfect_reversed_and_flat_rankings(p, expected):
    assert evaluation.roc_auc([0, 0, 1, 1], p) == expected


def test_pr_auc_averages_precision_at_each_positive():
    # Positives at ranks 1 and 3: precision 1 and 2/3, each worth half the recall.
    assert evaluation.pr_auc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3, abs=1e-12)


def test_log_loss_is_the_mean_negative_log_likelihood():
    assert evaluation.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2, abs=1e-12)


def test_log_loss_clips_certain_wrong_predictions_to_a_finite_loss():
    loss = evaluation.log_loss([0, 1], [1.0, 1.0])

    # The wrong 1.0 is clipped to 1 - 1e-15, whose complement in floating point is 1.1e-15.
    assert loss == pytest.approx(-(math.log(1 - (1 - 1e-15)) + math.log(1 - 1e-15)) / 2, abs=1e-12)


def test_brier_is_the_mean_squared_error():
    assert evaluation.brier([1, 0, 1], [0.8, 0.4, 0.5]) == pytest.approx((0.04 + 0.16 + 0.25) / 3, abs=1e-12)


def test_log_loss_and_brier_agree_with_sklearn(scored):
    y, p = scored

    assert evaluation.log_loss(y, p) == pytest.approx(metrics.log_loss(y, p), abs=1e-12)
    assert evaluation.brier(y, p) == pytest.approx(metrics.brier_score_loss(y, p), abs=1e-12)


def test_top_decile_lift_on_twenty_customers():
    # Given 4 positives in 20 (rate 0.2), one of them among the two highest scores (rate 0.5)
    p = [0.99, 0.95, *np.linspace(0.9, 0.1, 18)]
    y = [0, 1] + [1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]

    lift = evaluation.top_decile_lift(y, p)

    assert lift == pytest.approx(0.5 / 0.2, abs=1e-12)


@pytest.mark.parametrize(("positives", "expected"), [([0, 1], 10.0), ([18, 19], 0.0), ([1, 18], 5.0)])
def test_top_decile_lift_breaks_ties_by_original_order(positives, expected):
    y = np.zeros(20, dtype=int)
    y[positives] = 1

    assert evaluation.top_decile_lift(y, np.full(20, 0.5)) == expected


def test_top_decile_takes_the_ceiling_of_a_tenth():
    # 21 customers: the top decile is 3 rows, and the only positive is the third.
    y = np.zeros(21, dtype=int)
    y[2] = 1

    assert evaluation.top_decile_lift(y, np.linspace(1, 0, 21)) == pytest.approx((1 / 3) / (1 / 21), abs=1e-12)


def test_top_decile_lift_without_positives_is_zero():
    assert evaluation.top_decile_lift([0, 0, 0], [0.3, 0.2, 0.1]) == 0.0


def test_calibration_table_by_hand():
    table = evaluation.calibration_table([0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], bins=3)

    assert table == [
        {"bin": 1, "lower": 0.1, "upper": 0.2, "customers": 2, "mean_predicted": 0.15, "observed_rate": 0.0},
        {"bin": 2, "lower": 0.3, "upper": 0.4, "customers": 2, "mean_predicted": 0.35, "observed_rate": 0.5},
        {"bin": 3, "lower": 0.5, "upper": 0.6, "customers": 2, "mean_predicted": 0.55, "observed_rate": 1.0},
    ]


def test_calibration_bins_are_deciles_that_cover_everyone(scored):
    y, p = scored

    table = evaluation.calibration_table(y, p)

    assert [row["bin"] for row in table] == list(range(1, 11))
    assert [row["customers"] for row in table] == [100] * 10
    assert all(earlier["upper"] <= later["lower"] for earlier, later in zip(table, table[1:], strict=False))


@pytest.mark.parametrize(
    ("p", "sizes"),
    [([0.2] * 7 + [0.5] * 3, [7, 3]), ([0.4] * 10, [10]), ([0.1] * 4 + [0.3] + [0.9] * 5, [4, 1, 5])],
)
def test_calibration_table_keeps_ties_together_without_empty_bins(p, sizes):
    table = evaluation.calibration_table([0, 1] * 5, p, bins=4)

    assert [row["customers"] for row in table] == sizes
    assert [row["bin"] for row in table] == list(range(1, len(sizes) + 1))
    assert all(row["lower"] == row["upper"] for row in table)


def test_expected_calibration_error_weights_each_bin_gap_by_its_size():
    ece = evaluation.expected_calibration_error([0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], bins=3)

    assert ece == pytest.approx((2 * 0.15 + 2 * 0.15 + 2 * 0.45) / 6, abs=1e-12)


def test_roc_points_span_the_square_and_are_downsampled(scored):
    y, p = scored

    points = evaluation.roc_points(y, p, max_points=50)

    assert points[0] == [0.0, 0.0]
    assert points[-1] == [1.0, 1.0]
    assert len(points) == 50
    assert points == sorted(points)


def test_full_roc_points_integrate_to_the_auc(scored):
    y, p = scored

    points = np.array(evaluation.roc_points(y, p, max_points=100_000))

    assert np.trapezoid(points[:, 1], points[:, 0]) == pytest.approx(metrics.roc_auc_score(y, p), abs=1e-5)


def test_gains_points_by_hand():
    points = evaluation.gains_points([1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6], points=4)

    assert points == [[0.0, 0.0], [0.25, 0.5], [0.5, 0.5], [0.75, 0.5], [1.0, 1.0]]


def test_gains_points_run_from_nobody_to_everyone(scored):
    y, p = scored

    points = evaluation.gains_points(y, p)

    assert len(points) == 21
    assert points[0] == [0.0, 0.0]
    assert points[-1] == [1.0, 1.0]
    assert points[2][0] == 0.1
    assert points[2][1] == pytest.approx(evaluation.top_decile_lift(y, p) * 0.1, abs=1e-6)


def test_evaluate_returns_plain_json_ready_numbers(scored):
    y, p = scored

    report = evaluation.evaluate(list(y), list(p))

    assert list(report) == [
        "customers",
        "positives",
        "base_rate",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "top_decile_lift",
        "ece",
        "calibration",
        "roc",
        "gains",
    ]
    assert report["customers"] == 1000
    assert report["positives"] == int(y.sum())
    assert report["base_rate"] == round(y.mean(), 6)
    assert report["roc_auc"] == round(metrics.roc_auc_score(y, p), 6)
    assert report["pr_auc"] == round(metrics.average_precision_score(y, p), 6)
    assert json.loads(json.dumps(report)) == report
    assert all(type(report[key]) is float for key in ("base_rate", "roc_auc", "log_loss", "ece"))


@pytest.mark.parametrize(("y", "named"), [([0, 0, 0], "negatives (0)"), ([1, 1, 1], "positives (1)")])
def test_evaluate_refuses_a_single_class(y, named):
    with pytest.raises(ValueError, match=re.escape(f"y holds only {named}; ROC AUC and the other ranking metrics")):
        evaluation.evaluate(y, [0.1, 0.5, 0.9])


def test_evaluate_refuses_lengths_that_differ():
    with pytest.raises(ValueError, match="y has 3 values but p has 2"):
        evaluation.evaluate([0, 1, 0], [0.1, 0.9])


@pytest.mark.parametrize(
    ("y", "p", "message"), [([0, 2], [0.1, 0.9], "only 0 and 1"), ([0, 1], [0.1, 1.5], "between 0 and 1")]
)
def test_metrics_refuse_impossible_values(y, p, message):
    with pytest.raises(ValueError, match=message):
        evaluation.brier(y, p)
