"""Scoring runs on a real Celery worker and Redis: every chunk scored, and a worker killed mid-chunk loses nothing."""

import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from marketing.models import Customer
from ml.models import ChunkStatus, RunStatus, Score, ScoringRun
from ml.runs import resume_stalled_runs, start_scoring_run
from ml.tasks import score_chunk_task
from tests.ml.conftest import AS_OF

pytestmark = [pytest.mark.services, pytest.mark.postgres_only]

CUSTOMERS = 50
CHUNK_CUSTOMERS = 10
WAIT_S = 60
POLL_S = 0.05


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(POLL_S)


def backends_waiting_for_a_lock() -> list[tuple[int, str]]:
    """Return (pid, query) of the other sessions on this database that wait for a lock, read afresh."""
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps one snapshot of the activity view; drop it.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchall()


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 1


def run_of(run: ScoringRun) -> ScoringRun:
    return ScoringRun.objects.get(pk=run.pk)


@pytest.fixture
def customers(make_shopper) -> list[Customer]:
    histories = [(), (3,), (12, 40), (70, 150, 300), (200,)]
    return [make_shopper(orders=histories[number % len(histories)]) for number in range(CUSTOMERS)]


@pytest.fixture
def small_chunks(settings) -> int:
    settings.ML_SCORING_CHUNK_CUSTOMERS = CHUNK_CUSTOMERS
    return CHUNK_CUSTOMERS


def assert_everyone_scored_once(customers: list[Customer], version_id: int) -> None:
    rows = sorted(Score.objects.values_list("customer_id", "model_version_id"))
    assert rows == [(customer.pk, version_id) for customer in customers]


def test_a_worker_scores_every_chunk_of_a_run(celery_worker_process, small_chunks, trained_version, customers):
    run = start_scoring_run(AS_OF)  # autocommit: the chunks are sent as the run commits

    wait_until(lambda: run_of(run).status != RunStatus.RUNNING, "the run finishing")

    run = run_of(run)
    assert (run.status, run.chunks_total, run.chunks_done, run.customers_scored) == (RunStatus.DONE, 5, 5, CUSTOMERS)
    assert list(run.chunks.values_list("status", "customers", "attempts")) == [(ChunkStatus.DONE, 10, 1)] * 5
    assert_everyone_scored_once(customers, trained_version.pk)
    assert celery_worker_process.read_log().count("Task ml.score_chunk[") >= 5


class HeldScore:
    """Another session's uncommitted score of one customer: a worker writing the same score waits for it."""

    def __init__(self, customer_id: int, version_id: int) -> None:
        self.customer_id, self.version_id = customer_id, version_id
        self.inserted, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        try:
            with transaction.atomic():
                Score.objects.create(
                    customer_id=self.customer_id, model_version_id=self.version_id, probability=0.0, decile=10,
                    scored_at=AS_OF,
                )  # fmt: skip
                self.inserted.set()
                self.release.wait(WAIT_S)
                transaction.set_rollback(True)
        finally:
            connection.close()

    def __enter__(self) -> "HeldScore":
        self.thread.start()
        assert self.inserted.wait(WAIT_S)
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join(WAIT_S)


def test_a_worker_killed_while_writing_a_chunk_loses_nothing_and_writes_nothing_twice(
    settings, celery_worker_process, small_chunks, trained_version, customers
):
    # Given a run whose first chunk's worker waits, nine scores written, on another session's score of the tenth
    with HeldScore(customers[CHUNK_CUSTOMERS - 1].pk, trained_version.pk):
        run = start_scoring_run(AS_OF)  # autocommit: the chunks are sent as the run commits
        wait_until(lambda: len(backends_waiting_for_a_lock()) == 1, "the worker waiting on the held score")
        [(worker_backend, query)] = backends_waiting_for_a_lock()

        # When the worker is killed there
        celery_worker_process.kill(signal.SIGKILL)
    wait_until(lambda: not backend_alive(worker_backend), "the killed worker's session ending")

    # Then none of its scores was committed and its chunk is still to do
    first_chunk = run.chunks.order_by("first_id").first()
    assert query.startswith("COPY ml_score ")
    assert Score.objects.count() == 0
    assert (first_chunk.status, first_chunk.attempts, run_of(run).chunks_done) == (ChunkStatus.PENDING, 0, 0)

    # When a new worker takes the queued chunks (the killed one's task stays unacknowledged in Redis)
    celery_worker_process.start()
    wait_until(lambda: run_of(run).chunks_done == 4, "the four queued chunks being scored")
    first_chunk.refresh_from_db()
    assert (first_chunk.status, run_of(run).status) == (ChunkStatus.PENDING, RunStatus.RUNNING)

    # and the stalled run is resumed
    assert resume_stalled_runs(timezone.now() + timedelta(seconds=settings.ML_SCORING_STALL_S + 1)) == 1
    wait_until(lambda: run_of(run).status != RunStatus.RUNNING, "the resumed run finishing")

    # Then every customer has exactly one score
    run = run_of(run)
    assert (run.status, run.chunks_done, run.customers_scored) == (RunStatus.DONE, 5, CUSTOMERS)
    assert_everyone_scored_once(customers, trained_version.pk)
    first_chunk.refresh_from_db()
    assert (first_chunk.status, first_chunk.customers, first_chunk.attempts) == (ChunkStatus.DONE, 10, 1)

    # and a late duplicate delivery of the chunk writes nothing
    assert score_chunk_task.delay(first_chunk.pk).get(timeout=WAIT_S) is None
    assert_everyone_scored_once(customers, trained_version.pk)
    assert (run_of(run).chunks_done, run_of(run).customers_scored) == (5, CUSTOMERS)
