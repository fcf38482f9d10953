"""Static segments from files: customers named by id or address, unknown ones rejected by line."""

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from marketing.imports import ImportFailed
from marketing.models import Segment, SegmentChange, SegmentKind
from marketing.segments.lists import import_list
from marketing.segments.refresh import members_of
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def listed(name: str) -> list[str]:
    return sorted(members_of(Segment.objects.get(name=name)).values_list("external_id", flat=True))


def test_a_list_of_ids_becomes_a_static_segment_and_unknown_ids_are_rejected(tmp_path):
    for external_id in ("007", "008"):
        CustomerFactory(external_id=external_id)
    path = tmp_path / "vip.csv"
    path.write_text("external_id;note\n007;x\n999;y\n007;again\n;empty\n008;z\n")

    report = import_list("VIP", path, now=NOW)

    assert (report.read, report.added, report.already, report.rejected) == (5, 2, 1, 2)
    assert [(e.line, e.reason) for e in report.errors] == [(3, "no customer with external_id '999'"), (5, "external_id is empty")]
    assert listed("VIP") == ["007", "008"]
    segment = Segment.objects.get(name="VIP")
    assert (segment.kind, segment.size, segment.version) == (SegmentKind.STATIC, 2, 1)
    assert SegmentChange.objects.filter(segment=segment, kind="entered").count() == 2


def test_a_list_of_addresses_matches_customers_by_email(tmp_path):
    CustomerFactory(external_id="A", email="ann@example.com")
    path = tmp_path / "list.csv"
    path.write_text("Email\nANN@example.com\nnot-an-address\n")

    report = import_list("Newsletter", path, now=NOW)

    assert (report.added, report.rejected) == (1, 1)
    assert report.errors[0].reason == "'not-an-address' is not a valid e-mail address"
    assert listed("Newsletter") == ["A"]


def test_replace_removes_members_the_file_does_not_name(tmp_path):
    for external_id in ("A", "B"):
        CustomerFactory(external_id=external_id)
    first, second = tmp_path / "1.csv", tmp_path / "2.csv"
    first.write_text("external_id\nA\nB\n")
    second.write_text("external_id\nB\n")
    import_list("Picked", first, now=NOW)

    added = import_list("Picked", second, now=NOW)
    replaced = import_list("Picked", second, replace=True, now=NOW)

    assert (added.added, added.already, added.removed) == (0, 1, 0)
    assert (replaced.added, replaced.removed) == (0, 1)
    assert listed("Picked") == ["B"]


def test_a_dynamic_segment_cannot_take_a_list(tmp_path):
    Segment.objects.create(name="Germans", kind=SegmentKind.DYNAMIC)
    CustomerFactory(external_id="A")
    path = tmp_path / "l.csv"
    path.write_text("external_id\nA\n")

    with pytest.raises(ImportFailed, match="'Germans' is a dynamic segment"):
        import_list("Germans", path)

    assert Segment.objects.get(name="Germans").memberships.count() == 0


def test_the_command_prints_the_summary(tmp_path, capsys):
    CustomerFactory(external_id="A")
    path = tmp_path / "l.csv"
    path.write_text("external_id\nA\nZ\n")

    call_command("import_segment", "Picked", str(path))

    out, err = capsys.readouterr()
    assert out.strip() == "Picked: read 2 · added 1 · already members 0 · removed 0 · rejected 1"
    assert "line 3, column external_id: no customer with external_id 'Z'" in err


def test_the_command_refuses_an_empty_file(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("")

    with pytest.raises(CommandError, match="the file is empty"):
        call_command("import_segment", "Picked", str(path))

    assert Segment.objects.count() == 0
