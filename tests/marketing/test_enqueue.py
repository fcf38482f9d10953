"""Enqueueing by task name: only tasks modules import the domain code they run, and nothing imports a tasks module."""

import ast
from pathlib import Path

import pytest
from django.db import transaction

from marketing.enqueue import enqueue, enqueue_on_commit

ROOT = Path(__file__).resolve().parents[2]
APPS = ("marketing", "campaigns", "ml")


def imported_modules(path: Path) -> set[str]:
    """Return every module a file imports, at its top or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_module_of_the_apps_imports_a_tasks_module():
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if path.name != "tasks.py"
        for module in imported_modules(path)
        if module.split(".")[-1] == "tasks" and module.split(".")[0] in APPS
    )

    assert offenders == []


@pytest.mark.parametrize("name", ["campaigns.send_messages", "campaigns.enroll_for_events", "ml.score_chunk"])
def test_every_name_the_apps_enqueue_is_a_routed_task(name, settings):
    from marketing.celery import app

    app.autodiscover_tasks(force=True)
    assert name in app.tasks
    assert name in settings.CELERY_TASK_ROUTES


def test_enqueue_runs_the_named_task_in_process_without_a_broker(monkeypatch):
    calls: list[list[int]] = []
    monkeypatch.setattr("campaigns.tasks.send_messages", lambda ids: calls.append(ids) or _Report())

    enqueue("campaigns.send_messages", [3, 4])

    assert calls == [[3, 4]]


def test_an_unknown_task_name_raises_and_names_it():
    with pytest.raises(LookupError, match="'campaigns.no_such_task'"):
        enqueue("campaigns.no_such_task", 1)


@pytest.mark.django_db
def test_enqueue_on_commit_sends_nothing_when_the_transaction_rolls_back(monkeypatch, django_capture_on_commit_callbacks):
    calls: list[list[int]] = []
    monkeypatch.setattr("campaigns.tasks.send_messages", lambda ids: calls.append(ids) or _Report())

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        enqueue_on_commit("campaigns.send_messages", [1])
        raise RuntimeError("rolled back")
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit("campaigns.send_messages", [2])

    assert callbacks == []
    assert calls == [[2]]


class _Report:
    def summary(self) -> str:
        return "test"


def test_ids_handed_over_within_the_window_go_as_one_task_in_bounded_batches(monkeypatch):
    import threading

    from marketing import enqueue as module
    from marketing.celery import app

    sent: list[tuple[str, list[int]]] = []
    flushed = threading.Event()

    def record(name, ids):
        sent.append((name, ids))
        if sum(len(batch) for _, batch in sent) == 203:
            flushed.set()

    monkeypatch.setattr(module, "enqueue", record)
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    module.enqueue_gathered("campaigns.enroll_for_events", [1, 2], window_ms=200)
    module.enqueue_gathered("campaigns.enroll_for_events", [3], window_ms=200)
    module.enqueue_gathered("campaigns.enroll_for_events", list(range(4, 204)), window_ms=200)

    assert flushed.wait(timeout=10)
    assert sent == [
        ("campaigns.enroll_for_events", list(range(1, 201))),
        ("campaigns.enroll_for_events", list(range(201, 204))),
    ]


def test_without_a_broker_gathered_ids_are_sent_at_once(monkeypatch):
    from marketing import enqueue as module

    sent: list[tuple[str, list[int]]] = []
    monkeypatch.setattr(module, "enqueue", lambda name, ids: sent.append((name, ids)))

    module.enqueue_gathered("campaigns.enroll_for_events", [7], window_ms=50)

    assert sent == [("campaigns.enroll_for_events", [7])]
