"""The run's clock: KAIROS_TEST_NOW moves pytest and every Python process it starts onto one time line."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.clock import NOW_ENV, PROJECT_DIR, SITE_DIR, STARTED_AT_ENV, ClockError, parse_moment, real_time, run_moment

MOMENT = datetime(2026, 3, 29, 23, 30, tzinfo=UTC)
# Starting a Python process takes well under this; the bound only keeps a hung child from passing.
START_SLACK = timedelta(seconds=60)
PRINT_NOW = "from datetime import UTC, datetime; print(datetime.now(UTC).isoformat())"


def child_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {NOW_ENV, STARTED_AT_ENV, "PYTHONPATH"}}
    return {**env, **extra}


def child_now(code: str, env: dict[str, str]) -> datetime:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return datetime.fromisoformat(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("2026-12-05T02:30:00Z", datetime(2026, 12, 5, 2, 30, tzinfo=UTC)),
        ("2026-03-29T23:30:00+00:00", MOMENT),
        ("2026-03-30T01:30:00+02:00", MOMENT),
    ],
)
def test_a_moment_is_read_in_utc(value, moment):
    assert parse_moment(value) == moment
    assert parse_moment(value).tzinfo is UTC


@pytest.mark.parametrize("value", ["2026-12-05T02:30:00", "tonight", "2026-13-01T00:00:00Z"])
def test_a_moment_without_an_offset_or_malformed_is_refused_naming_the_variable(value):
    with pytest.raises(ClockError) as refused:
        parse_moment(value)

    assert str(refused.value) == (
        f"KAIROS_TEST_NOW must be an ISO 8601 moment with its offset, such as 2026-12-05T02:30:00Z; got {value!r}"
    )


def test_a_process_started_later_in_the_run_is_as_far_along_as_the_run():
    environ = {NOW_ENV: "2026-03-29T23:30:00Z", STARTED_AT_ENV: "1000.0"}

    assert run_moment(environ, real_now=1000.0 + 600) == MOMENT + timedelta(minutes=10)
    assert run_moment({NOW_ENV: "2026-03-29T23:30:00Z"}, real_now=5.0) == MOMENT
    assert run_moment({}, real_now=5.0) is None


def test_any_python_process_of_the_run_starts_on_the_runs_time_line():
    started_at = real_time() - 600  # the run began ten minutes ago, by the real clock

    now = child_now(
        PRINT_NOW,
        child_env(
            **{
                NOW_ENV: "2026-03-29T23:30:00Z",
                STARTED_AT_ENV: repr(started_at),
                "PYTHONPATH": f"{SITE_DIR}{os.pathsep}{PROJECT_DIR}",
            }
        ),
    )

    assert MOMENT + timedelta(minutes=10) <= now < MOMENT + timedelta(minutes=10) + START_SLACK


def test_a_process_on_the_test_settings_moves_its_clock_and_hands_the_time_line_to_its_children():
    code = (
        "import django, os, subprocess, sys; django.setup(); from django.utils import timezone; print(timezone.now().isoformat()); "
        f"print(subprocess.run([sys.executable, '-c', {PRINT_NOW!r}], capture_output=True, text=True).stdout)"
    )

    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        env=child_env(**{NOW_ENV: "2026-03-29T23:30:00Z", "DJANGO_SETTINGS_MODULE": "tests.settings"}),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    parent, child = (datetime.fromisoformat(line) for line in run.stdout.split())
    assert MOMENT <= parent < child < MOMENT + START_SLACK


def test_without_the_variable_a_process_keeps_the_real_clock():
    before = datetime.fromtimestamp(real_time(), UTC)  # real, even when this run's own clock moved
    now = child_now(PRINT_NOW, child_env(PYTHONPATH=f"{SITE_DIR}{os.pathsep}{PROJECT_DIR}"))

    assert abs(now - before) < START_SLACK
