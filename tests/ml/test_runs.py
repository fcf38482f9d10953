"""Scoring runs: chunks sent on commit, each customer scored exactly once, crashes and retries, stalled runs."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from ml import runs
from ml.features import FEATURE_NAMES, FeatureMismatch
from ml.models import ChunkStatus, ModelStatus, RunStatus, Score, ScoringChunk, ScoringRun
from ml.runs import (
    MAX_CHUNK_ATTEMPTS,
    NoActiveModel,
    record_chunk_failure,
    resume_stalled_runs,
    score_chunk,
    start_scoring_run,
    write_scores,
)
from ml.scoring import assign_deciles, decile_cut_points
from ml.tasks import score_chunk_task
from tests.factories import CustomerFactory
from tests.ml.conftest import AS_OF

CHUNK_CUSTOMERS = 3


@pytest.fixture
def small_chunks(settings):
    settings.ML_SCORING_CHUNK_CUSTOMERS = CHUNK_CUSTOMERS
    return CHUNK_CUSTOMERS


@pytest.fixture
def planned_run(small_chunks, trained_version, shoppers) -> ScoringRun:
    """A run of the seven shoppers in three chunks, none of them sent: the test transaction never commits."""
    return start_scoring_run(AS_OF)


def chunk_rows(run: ScoringRun) -> list[tuple]:
    return list(run.chunks.order_by("first_id").values_list("first_id", "last_id", "status", "customers", "attempts"))


def scored_customers() -> list[tuple[int, int]]:
    return list(
        Score.objects.order_by("customer_id", "model_version_id").values_list("customer_id", "model_version_id")
    )


def test_a_run_scores_every_customer_once_in_chunks_naming_the_version(
    small_chunks, trained_version, shoppers, django_capture_on_commit_callbacks
):
    ids = [shopper.pk for shopper in shoppers]
    CustomerFactory()  # joined after the run's moment: not scored

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = start_scoring_run(AS_OF)

    run.refresh_from_db()
    assert len(callbacks) == 1
    assert (run.status, run.chunks_total, run.chunks_done, run.customers_scored) == (RunStatus.DONE, 3, 3, 7)
    assert run.finished_at is not None and run.error == ""
    assert chunk_rows(run) == [
        (ids[0], ids[2], ChunkStatus.DONE, 3, 1),
        (ids[3], ids[5], ChunkStatus.DONE, 3, 1),
        (ids[6], ids[6], ChunkStatus.DONE, 1, 1),
    ]
    assert scored_customers() == [(pk, trained_version.pk) for pk in ids]
    scores = list(Score.objects.order_by("customer_id").values_list("probability", "decile", "scored_at"))
    probability = np.array([p for p, _, _ in scores])
    assert [d for _, d, _ in scores] == assign_deciles(probability, run.decile_cut_points).tolist()
    assert run.decile_cut_points == pytest.approx(decile_cut_points(probability), abs=1e-12)
    assert {at for _, _, at in scores} == {AS_OF}


def test_chunks_are_sent_only_when_the_run_commits(
    small_chunks, trained_version, shoppers, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        run = start_scoring_run(AS_OF)

    assert len(callbacks) == 1
    assert [status for _, _, status, _, _ in chunk_rows(run)] == [ChunkStatus.PENDING] * 3
    assert Score.objects.count() == 0


def test_a_run_with_nobody_to_score_is_done_at_once(trained_version, shoppers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = start_scoring_run(AS_OF - timedelta(days=1000))

    assert (run.status, run.chunks_total, run.chunks_done, run.decile_cut_points) == (RunStatus.DONE, 0, 0, [])
    assert run.finished_at is not None
    assert ScoringChunk.objects.count() == Score.objects.count() == 0


def test_scoring_a_chunk_twice_writes_it_once(planned_run):
    chunk = planned_run.chunks.order_by("first_id").first()
    first = score_chunk(chunk.pk)
    written = list(Score.objects.order_by("customer_id").values_list("customer_id", "probability", "reasons"))

    again = score_chunk(chunk.pk)

    planned_run.refresh_from_db()
    assert (first, again) == (3, 0)
    assert list(Score.objects.order_by("customer_id").values_list("customer_id", "probability", "reasons")) == written
    assert (planned_run.chunks_done, planned_run.customers_scored, planned_run.status) == (1, 3, RunStatus.RUNNING)
    chunk.refresh_from_db()
    assert chunk.attempts == 1


def test_a_crash_after_writing_before_commit_leaves_no_scores_and_a_retry_writes_each_customer_once(
    planned_run, shoppers, monkeypatch
):
    chunk = planned_run.chunks.order_by("first_id").first()
    written_before_crash = []

    def write_then_crash(*args) -> None:
        write_scores(*args)
        written_before_crash.append(Score.objects.count())
        raise RuntimeError("worker lost")

    monkeypatch.setattr(runs, "write_scores", write_then_crash)
    with pytest.raises(RuntimeError, match="worker lost"):
        score_chunk(chunk.pk)

    assert written_before_crash == [3]
    assert Score.objects.count() == 0
    assert chunk_rows(planned_run)[0] == (chunk.first_id, chunk.last_id, ChunkStatus.PENDING, 0, 0)
    planned_run.refresh_from_db()
    assert (planned_run.chunks_done, planned_run.customers_scored) == (0, 0)

    monkeypatch.undo()
    assert score_chunk(chunk.pk) == 3
    assert scored_customers() == [(shopper.pk, planned_run.model_version_id) for shopper in shoppers[:3]]
    assert chunk_rows(planned_run)[0] == (chunk.first_id, chunk.last_id, ChunkStatus.DONE, 3, 1)


def test_a_failing_chunk_records_each_attempt_and_fails_the_run_after_the_last(planned_run, monkeypatch):
    chunk = planned_run.chunks.order_by("first_id").last()

    def broken(*args):
        raise ValueError("a column of NaN")

    monkeypatch.setattr(runs, "read_aggregates", broken)
    for _ in range(MAX_CHUNK_ATTEMPTS - 1):
        with pytest.raises(ValueError, match="a column of NaN"):
            score_chunk_task.apply(args=(chunk.pk,))

    chunk.refresh_from_db()
    planned_run.refresh_from_db()
    assert (chunk.status, chunk.attempts, chunk.error) == (ChunkStatus.PENDING, 2, "ValueError: a column of NaN")
    assert (planned_run.status, planned_run.error, planned_run.finished_at) == (RunStatus.RUNNING, "", None)

    record_chunk_failure(chunk.pk, "ValueError: the last straw")

    chunk.refresh_from_db()
    planned_run.refresh_from_db()
    assert (chunk.status, chunk.attempts, chunk.error) == (ChunkStatus.FAILED, 3, "ValueError: the last straw")
    assert planned_run.status == RunStatus.FAILED
    assert planned_run.error == f"customers {chunk.first_id}-{chunk.last_id}: ValueError: the last straw"
    assert planned_run.finished_at is not None
    assert Score.objects.count() == 0


def test_a_failed_or_done_chunk_ignores_later_failures_and_deliveries(planned_run):
    chunk = planned_run.chunks.order_by("first_id").first()
    for attempt in range(MAX_CHUNK_ATTEMPTS):
        record_chunk_failure(chunk.pk, f"attempt {attempt}")

    record_chunk_failure(chunk.pk, "once more")
    scored = score_chunk(chunk.pk)

    chunk.refresh_from_db()
    assert (scored, chunk.status, chunk.attempts, chunk.error) == (0, ChunkStatus.FAILED, 3, "attempt 2")
    assert Score.objects.count() == 0


def test_resuming_resends_only_the_pending_chunks_of_stalled_runs(
    settings, small_chunks, trained_version, shoppers, django_capture_on_commit_callbacks
):
    settings.ML_SCORING_STALL_S = 600
    now = timezone.now()
    stalled = start_scoring_run(AS_OF)
    first_chunk = stalled.chunks.order_by("first_id").first()
    score_chunk(first_chunk.pk)
    busy = start_scoring_run(AS_OF + timedelta(days=1))
    finished = start_scoring_run(AS_OF + timedelta(days=2))
    ScoringRun.objects.filter(pk=finished.pk).update(status=RunStatus.DONE)
    long_ago = now - timedelta(seconds=601)
    ScoringRun.objects.filter(pk__in=[stalled.pk, finished.pk]).update(updated_at=long_ago)
    ScoringRun.objects.filter(pk=busy.pk).update(updated_at=now - timedelta(seconds=599))

    with django_capture_on_commit_callbacks(execute=True):
        sent = resume_stalled_runs(now)

    assert sent == 2
    stalled.refresh_from_db()
    assert (stalled.status, stalled.chunks_done, stalled.customers_scored) == (RunStatus.DONE, 3, 7)
    assert [status for _, _, status, _, _ in chunk_rows(busy)] == [ChunkStatus.PENDING] * 3
    assert [status for _, _, status, _, _ in chunk_rows(finished)] == [ChunkStatus.PENDING] * 3
    assert ScoringRun.objects.get(pk=busy.pk).updated_at == now - timedelta(seconds=599)
    assert ScoringRun.objects.get(pk=finished.pk).updated_at == long_ago
    assert scored_customers() == [(shopper.pk, trained_version.pk) for shopper in shoppers]


def test_nothing_is_resumed_when_no_run_stalled(planned_run, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        sent = resume_stalled_runs(timezone.now())

    assert (sent, callbacks) == (0, [])
    assert Score.objects.count() == 0


@pytest.mark.parametrize("status", [None, ModelStatus.CANDIDATE, ModelStatus.RETIRED])
def test_a_run_without_an_active_model_is_refused(make_version, booster, shoppers, status):
    if status is not None:
        make_version(booster, version=1, status=status)

    with pytest.raises(NoActiveModel) as raised:
        start_scoring_run(AS_OF)

    assert str(raised.value) == "no active purchase_propensity model: train one with train_propensity --activate"
    assert ScoringRun.objects.count() == ScoringChunk.objects.count() == 0


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        (
            [FEATURE_NAMES[1], FEATURE_NAMES[0], *FEATURE_NAMES[2:]],
            "column 1 is 'tenure_days' where the model expects 'days_since_first_order'",
        ),
        ([name for name in FEATURE_NAMES if name != "spend_trend"], "unexpected spend_trend"),
        ([*FEATURE_NAMES, "gender"], "missing gender"),
    ],
    ids=["reordered", "fewer", "more"],
)
def test_a_version_trained_on_other_features_is_refused_before_any_run_exists(
    make_version, booster, shoppers, stored, problem, django_capture_on_commit_callbacks
):
    version = make_version(booster, version=1, status=ModelStatus.ACTIVE, feature_names=stored)

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(FeatureMismatch) as raised:
        start_scoring_run(AS_OF)

    assert str(raised.value) == f"{version} was trained on other features than this code builds: {problem}"
    assert callbacks == []
    assert ScoringRun.objects.count() == ScoringChunk.objects.count() == Score.objects.count() == 0


def test_a_version_whose_features_change_under_a_run_scores_nobody(planned_run):
    version = planned_run.model_version
    version.feature_names = [FEATURE_NAMES[1], FEATURE_NAMES[0], *FEATURE_NAMES[2:]]
    version.save(update_fields=["feature_names"])
    chunk = planned_run.chunks.order_by("first_id").first()

    with pytest.raises(FeatureMismatch):
        score_chunk(chunk.pk)

    assert chunk_rows(planned_run)[0] == (chunk.first_id, chunk.last_id, ChunkStatus.PENDING, 0, 0)
    assert Score.objects.count() == 0


def test_a_large_population_takes_its_decile_cut_points_from_a_sample(
    settings, small_chunks, trained_version, shoppers, django_capture_on_commit_callbacks, monkeypatch
):
    settings.ML_DECILE_SAMPLE_CUSTOMERS = 3  # seven customers: every third block is sampled
    monkeypatch.setattr("ml.queries.SAMPLE_BLOCK_CUSTOMERS", 1)

    with django_capture_on_commit_callbacks(execute=True):
        run = start_scoring_run(AS_OF)

    run.refresh_from_db()
    sample = Score.objects.filter(customer_id__in=[s.pk for s in shoppers[::3]]).values_list("probability", flat=True)
    assert run.status == RunStatus.DONE and run.customers_scored == 7
    assert run.decile_cut_points == pytest.approx(decile_cut_points(np.array(list(sample))), abs=1e-12)
