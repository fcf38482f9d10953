"""Processes for the benchmarks: real Celery prefork workers on the bench's broker, and what CPU they used."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_READY_TIMEOUT_S = 60


def start_worker(env: dict[str, str], concurrency: int, log_path: Path, queue: str) -> subprocess.Popen:
    """Start a prefork worker on one queue and return once it is ready."""
    command = [
        sys.executable, "-m", "celery", "--app", "marketing", "worker", "--pool", "prefork",
        "--concurrency", str(concurrency), "--queues", queue, "--loglevel", "INFO",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    log = open(log_path, "w")  # noqa: SIM115 (kept open for the worker's lifetime)
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while "ready." not in log_path.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the Celery worker did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    return worker


def tree_cpu_s(pid: int) -> float:
    """Return the CPU seconds a process and its living descendants have used (Linux /proc)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        pending.extend(int(child) for child in children)
    return total
