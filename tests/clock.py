"""The test run's clock: `KAIROS_TEST_NOW` moves every Python process of a run to one moment, ticking.

`KAIROS_TEST_NOW=2026-12-05T02:30:00Z make test` runs the suite as if it had started at 02:30 UTC.
The first process to start the clock (pytest, through the test settings) records the real moment it
did so in `KAIROS_TEST_NOW_STARTED_AT` and puts `tests/clock_site` on `PYTHONPATH`, so every Python
process it starts (a Celery worker, a web server, `manage.py`, a script) starts its clock on the same
time line through `sitecustomize`: a worker started ten minutes into the run reads 02:40, not 02:30.
Only Python's wall clock moves (time.time, datetime.now, date.today); monotonic clocks, and the
PostgreSQL and Redis servers, keep real time, as they would on another machine.

No Django here: the settings import this before Django is configured.
"""

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

NOW_ENV = "KAIROS_TEST_NOW"
STARTED_AT_ENV = "KAIROS_TEST_NOW_STARTED_AT"
SITE_DIR = Path(__file__).resolve().parent / "clock_site"
PROJECT_DIR = SITE_DIR.parents[1]


class ClockError(ValueError):
    """KAIROS_TEST_NOW (or its companion) holds something that is not a moment."""


def parse_moment(value: str) -> datetime:
    """Return the UTC moment an ISO 8601 string with an offset names; refuse naive or malformed values."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ClockError(
            f"{NOW_ENV} must be an ISO 8601 moment with its offset, such as 2026-12-05T02:30:00Z; got {value!r}"
        )
    return moment.astimezone(UTC)


def run_moment(environ: dict[str, str], real_now: float) -> datetime | None:
    """Return where this process's clock starts: the run's moment plus the real time since the run began."""
    value = environ.get(NOW_ENV, "")
    if not value:
        return None
    moment = parse_moment(value)
    started_at = environ.get(STARTED_AT_ENV)
    if started_at is None:
        return moment
    try:
        elapsed = real_now - float(started_at)
    except ValueError:
        raise ClockError(f"{STARTED_AT_ENV} must be a Unix time in seconds; got {started_at!r}") from None
    return moment + timedelta(seconds=max(elapsed, 0.0))


def real_time() -> float:
    """Return the real Unix time, even while this process's clock is moved."""
    import time_machine

    if time_machine.escape_hatch.is_travelling():
        return time_machine.escape_hatch.time.time()
    return time.time()


def start_run_clock(environ=os.environ) -> datetime | None:
    """Start this process's clock at the run's moment, ticking; return that moment, or None when unset.

    Idempotent: a process whose clock already moved (sitecustomize ran, then the settings) keeps it.
    """
    if not environ.get(NOW_ENV):
        return None
    import time_machine

    if time_machine.escape_hatch.is_travelling():
        return None
    real_now = time.time()
    moment = run_moment(environ, real_now)
    # Children inherit the run's time line and the hook that puts them on it.
    environ.setdefault(STARTED_AT_ENV, repr(real_now))
    path = [entry for entry in environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    for entry in (str(PROJECT_DIR), str(SITE_DIR)):
        if entry not in path:
            path.insert(0, entry)
    environ["PYTHONPATH"] = os.pathsep.join(path)
    time_machine.travel(moment, tick=True).start()
    return moment
