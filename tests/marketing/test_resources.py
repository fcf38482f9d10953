"""Every task has a soft and a hard time limit, and worker processes have a memory cap."""

import subprocess
import sys
from pathlib import Path

from marketing.celery import app

ROOT = Path(__file__).resolve().parents[2]


def test_every_task_has_a_soft_and_a_hard_time_limit():
    app.loader.import_default_modules()
    tasks = {name: task for name, task in app.tasks.items() if name.split(".")[0] in {"marketing", "campaigns", "ml"}}

    limits = {
        name: (task.soft_time_limit or app.conf.task_soft_time_limit, task.time_limit or app.conf.task_time_limit)
        for name, task in tasks.items()
    }

    assert len(tasks) >= 18
    assert all(soft and hard and soft < hard for soft, hard in limits.values()), limits
    assert limits["campaigns.send_messages"] == (600, 660)
    assert limits["marketing.import_file"] == (3600, 3660)


def test_a_capped_process_gets_memory_error_and_lives_on():
    script = (
        "from django.conf import settings; settings.configure();"
        "from marketing.resources import limit_worker_memory;"
        "print(limit_worker_memory(256));"
        "\ntry:\n    block = bytearray(1024 * 1024 * 1024)\nexcept MemoryError:\n    print('MemoryError')\n"
        "print(len(bytearray(1024 * 1024)))"
    )

    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert result.stdout.split() == [str(256 * 1024 * 1024), "MemoryError", str(1024 * 1024)], result.stderr
