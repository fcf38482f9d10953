"""The importer end to end: messy files, exact counts, idempotency and suppression."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from marketing.imports import ImportFailed, import_file
from marketing.models import Consent, Customer, Event, Order, OrderLine, Product, Suppression, SuppressionReason

pytestmark = pytest.mark.django_db


def write(tmp_path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def error_rows(report_stream: io.StringIO) -> list[list[str]]:
    return list(csv.reader(io.StringIO(report_stream.getvalue())))[1:]


MESSY_CUSTOMERS = (
    "\ufeffexternal_id;email;first_name;country;consent_state\r\n"
    "00042;Ann@Example.COM;Ann;de;yes\r\n"
    "00043;not-an-email;Bob;DE;yes\r\n"
    ";empty@example.com;Nobody;FR;yes\r\n"
    "00044;chris@example.com;\"Chris; Jr\";Germany;no\r\n"
    "00045;dana@example.com;Dana;GB;maybe\r\n"
    "00042;ann@example.com;Ann again;DE;yes\r\n"
    "00046;\"eve@example.com\";\"Eve \"\"E\"\" Smith\";US;opted_out\r\n"
)


def test_messy_customers_are_reported_line_by_line_and_counts_reconcile(tmp_path):
    path = write(tmp_path, "customers.csv", MESSY_CUSTOMERS)
    errors = io.StringIO()

    report = import_file("customers", path, errors_to=errors)

    assert (report.read, report.inserted, report.updated, report.rejected) == (7, 2, 0, 5)
    assert report.reconciles
    assert report.dialect == "CSV, semicolon-delimited, UTF-8"
    assert error_rows(errors) == [
        ["3", "email", "not-an-email", "email: 'not-an-email' is not a valid e-mail address"],
        ["4", "external_id", "", "external_id is empty"],
        ["5", "country", "Germany", "country: 'Germany' is not a two-letter country code such as DE"],
        ["6", "consent_state", "maybe", "consent_state: 'maybe' is not one of opted_in, opted_out, unknown"],
        ["7", "external_id", "00042", "duplicate external_id '00042' earlier in this file"],
    ]
    stored = {c.external_id: c for c in Customer.objects.all()}
    assert sorted(stored) == ["00042", "00046"]
    assert stored["00042"].email == "ann@example.com"
    assert stored["00042"].country == "DE"
    assert stored["00042"].consent_state == Consent.OPTED_IN
    assert stored["00042"].consent_source == "import:customers.csv"
    assert stored["00046"].first_name == 'Eve "E" Smith'
    assert stored["00046"].consent_state == Consent.OPTED_OUT


def test_reimporting_the_same_file_adds_nothing(tmp_path):
    path = write(tmp_path, "customers.csv", MESSY_CUSTOMERS)
    import_file("customers", path)
    before = list(Customer.objects.order_by("external_id").values_list("external_id", "email", "first_name"))

    again = import_file("customers", path)

    assert (again.read, again.inserted, again.updated, again.rejected) == (7, 0, 2, 5)
    assert list(Customer.objects.order_by("external_id").values_list("external_id", "email", "first_name")) == before


def test_whitespace_aligned_transaction_log_creates_customers_and_derives_stable_order_ids(tmp_path):
    log = (
        "customer_id  date        amount\n"
        "00042        20240103    19.90\n"
        "00042        20240103    19.90\n"
        "00007        2024-02-01  5\n"
        "00008        2024-13-01  7.00\n"
        "00009        20240230    7.00\n"
        "00010        2024-03-01  -3.00\n"
        "00011        2024-03-01  1.999\n"
    )
    path = write(tmp_path, "log.txt", log)
    mapping = {"customer": "customer_id", "placed_at": "date", "total": "amount"}
    errors = io.StringIO()

    report = import_file("orders", path, mapping=mapping, errors_to=errors)

    assert (report.read, report.inserted, report.updated, report.rejected) == (7, 3, 0, 4)
    assert report.customers_created == 2
    assert report.dialect == "CSV, whitespace-delimited, UTF-8"
    assert [row[:2] for row in error_rows(errors)] == [["5", "date"], ["6", "date"], ["7", "amount"], ["8", "amount"]]
    assert error_rows(errors)[3][3] == "total: '1.999' has more than 2 decimal places"
    # Two identical lines are two purchases; their ids differ only by occurrence.
    orders = list(Order.objects.filter(customer__external_id="00042").order_by("external_id"))
    assert [o.total for o in orders] == [Decimal("19.90"), Decimal("19.90")]
    assert [o.external_id[-2:] for o in orders] == ["-1", "-2"]
    assert orders[0].placed_at == datetime(2024, 1, 3, tzinfo=UTC)
    assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["00007", "00042"]

    again = import_file("orders", path, mapping=mapping)

    assert (again.inserted, again.updated, again.rejected, again.customers_created) == (0, 3, 4, 0)
    assert Order.objects.count() == 3


def test_dates_in_day_first_form_need_the_date_format_option(tmp_path):
    path = write(tmp_path, "orders.csv", "order_id,customer,placed_at,total\nA1,C1,31/12/2024,10.00\n")

    refused = import_file("orders", path, mapping={"external_id": "order_id"})
    accepted = import_file("orders", path, mapping={"external_id": "order_id"}, date_format="%d/%m/%Y")

    assert (refused.inserted, refused.rejected) == (0, 1)
    assert "--date-format" in refused.errors[0].reason
    assert (accepted.inserted, accepted.rejected) == (1, 0)
    assert Order.objects.get().placed_at == datetime(2024, 12, 31, tzinfo=UTC)


def test_crlf_quoted_fields_and_leading_zeros_survive(tmp_path):
    content = 'sku,name,price,description\r\n007,"Bond, James",9.99,"two\r\nlines"\r\n0070,Other,"1,299.00",\r\n'
    path = write(tmp_path, "products.csv", content)

    report = import_file("products", path)

    assert (report.read, report.inserted, report.rejected) == (2, 2, 0)
    first, second = Product.objects.order_by("sku")
    assert (first.sku, first.name, first.price, first.description) == ("007", "Bond, James", Decimal("9.99"), "two\r\nlines")
    assert (second.sku, second.price) == ("0070", Decimal("1299.00"))


def test_rows_with_the_wrong_number_of_cells_are_rejected_with_their_line(tmp_path):
    path = write(tmp_path, "customers.csv", "external_id,email\nC1,a@example.com\nC2,b@example.com,extra\n\nC3,c@example.com\n")

    report = import_file("customers", path)

    assert (report.read, report.inserted, report.rejected) == (3, 2, 1)
    assert (report.errors[0].line, report.errors[0].reason) == (3, "line has 3 cells where the header has 2")


def test_a_blank_cell_never_erases_stored_data(tmp_path):
    first = write(tmp_path, "a.csv", "external_id,email,first_name,city\nC1,a@example.com,Ann,Berlin\n")
    second = write(tmp_path, "b.csv", "external_id,email,first_name,city\nC1,,Anna,\n")
    import_file("customers", first)

    report = import_file("customers", second)

    assert (report.updated, report.rejected) == (1, 0)
    customer = Customer.objects.get()
    assert (customer.email, customer.first_name, customer.city) == ("a@example.com", "Anna", "Berlin")


def test_custom_attributes_merge_key_by_key(tmp_path):
    import_file("customers", write(tmp_path, "a.csv", "external_id,Tier,Pets\nC1,gold,2\n"),
                mapping={"attributes.tier": "Tier", "attributes.pets": "Pets"})

    import_file("customers", write(tmp_path, "b.jsonl", '{"external_id": "C1", "attributes": {"vip": true}}\n'))

    assert Customer.objects.get().attributes == {"tier": "gold", "pets": "2", "vip": True}


def test_json_lines_events_with_bad_lines(tmp_path):
    content = (
        '{"customer": "C1", "name": "product_viewed", "occurred_at": "2024-05-01T10:00:00Z", "properties": {"sku": "007"}}\n'
        "{not json}\n"
        '["a list"]\n'
        '{"customer": "C1", "name": "Product Viewed", "occurred_at": "2024-05-01T10:00:00Z"}\n'
        '{"customer": 42, "name": "cart_added", "occurred_at": "2024-05-01T11:00:00+02:00"}\n'
    )
    path = write(tmp_path, "events.jsonl", content)

    report = import_file("events", path)
    again = import_file("events", path)

    assert (report.read, report.inserted, report.rejected, report.customers_created) == (5, 2, 3, 2)
    assert [(e.line, e.reason.split(" (")[0]) for e in report.errors] == [
        (2, "line is not valid JSON"),
        (3, "line is not a JSON object"),
        (4, "name: 'Product Viewed' is not snake_case"),
    ]
    assert (again.inserted, again.updated) == (0, 2)
    viewed = Event.objects.get(name="product_viewed")
    assert viewed.properties == {"sku": "007"}
    assert Event.objects.get(name="cart_added").occurred_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert Event.objects.get(name="cart_added").customer.external_id == "42"


def test_order_lines_need_existing_orders_and_products(tmp_path):
    import_file("products", write(tmp_path, "p.csv", "sku,name,price\nP1,Mug,8.00\n"))
    import_file("orders", write(tmp_path, "o.csv", "external_id,customer,placed_at,total\nO1,C1,2024-01-01,16.00\n"))
    path = write(tmp_path, "l.csv", "order,product,quantity,unit_price\nO1,P1,2,8.00\nO2,P1,1,8.00\nO1,P9,1,3.00\nO1,P1,3,8.00\n")

    report = import_file("order_lines", path)

    assert (report.read, report.inserted, report.updated, report.rejected) == (4, 1, 0, 3)
    assert [(e.line, e.reason) for e in report.errors] == [
        (3, "order: no order with external_id 'O2'"),
        (4, "product: no product with sku 'P9'"),
        (5, "duplicate order + product 'O1, P1' earlier in this file"),
    ]
    line = OrderLine.objects.get()
    assert (line.order.external_id, line.product.sku, line.quantity) == ("O1", "P1", 2)


def test_reimport_cannot_lift_a_suppression(tmp_path):
    Suppression.suppress("ann@example.com", SuppressionReason.UNSUBSCRIBED)
    path = write(tmp_path, "c.csv", "external_id,email,consent_state\nC1,ANN@example.com,opted_in\nC2,bo@example.com,opted_in\n")

    report = import_file("customers", path)
    again = import_file("customers", path)

    assert report.kept_suppressed == 1 and again.kept_suppressed == 1
    assert Suppression.objects.count() == 1
    assert Suppression.is_suppressed("Ann@Example.com")
    ann = Customer.objects.get(external_id="C1")
    assert ann.consent_state == Consent.OPTED_OUT
    assert list(Customer.objects.suppressed().values_list("external_id", flat=True)) == ["C1"]
    assert list(Customer.objects.mailable().values_list("external_id", flat=True)) == ["C2"]


def test_dry_run_counts_without_writing(tmp_path):
    import_file("customers", write(tmp_path, "a.csv", "external_id,email\nC1,a@example.com\n"))
    path = write(tmp_path, "o.csv", "external_id,customer,placed_at,total\nO1,C1,2024-01-01,1.00\nO2,C2,2024-01-01,bad\nO3,C3,2024-01-01,2.00\nO4,C3,2024-01-02,2.00\n")

    report = import_file("orders", path, dry_run=True)

    assert (report.read, report.inserted, report.updated, report.rejected, report.customers_created) == (4, 3, 0, 1, 1)
    assert Order.objects.count() == 0
    assert Customer.objects.count() == 1


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"nope": "x"}, "--map nope=x: orders have no field 'nope'"),
        ({"total": "missing"}, "--map total=missing: the file has no column 'missing'; columns: id, who, when, amount"),
        ({"total.x": "amount"}, "only JSON fields take a key after the dot"),
        ({"customer": "who", "placed_at": "when"}, "orders need a 'total' column; map one with --map total=COLUMN"),
    ],
)
def test_bad_mappings_fail_before_anything_is_written(tmp_path, mapping, message):
    path = write(tmp_path, "o.csv", "id,who,when,amount\nO1,C1,2024-01-01,1.00\n")

    with pytest.raises(ImportFailed) as failure:
        import_file("orders", path, mapping=mapping)

    assert message in str(failure.value)
    assert Order.objects.count() == 0 and Customer.objects.count() == 0


def test_non_utf8_files_are_refused_whole(tmp_path):
    path = write(tmp_path, "latin1.csv", "external_id,first_name\nC1,Jos\xe9\n".encode("latin-1"))

    with pytest.raises(ImportFailed, match="not UTF-8"):
        import_file("customers", path)

    assert Customer.objects.count() == 0


def test_command_writes_the_errors_file_and_summary(tmp_path, capsys):
    path = write(tmp_path, "c.csv", "id\tmail\nC1\ta@example.com\nC2\tbroken\n")
    errors_path = tmp_path / "errors.csv"

    call_command("import_data", "customers", path, "--map", "external_id=id", "--map", "email=mail",
                 "--delimiter", "tab", "--errors", str(errors_path))

    out, err = capsys.readouterr()
    assert "customers: read 2 · inserted 1 · updated 0 · rejected 1" in out
    assert "line 3, column mail: email: 'broken' is not a valid e-mail address" in err
    assert errors_path.read_text().splitlines() == [
        "line,column,value,reason",
        "3,mail,broken,email: 'broken' is not a valid e-mail address",
    ]


def test_command_refuses_a_malformed_map_option(tmp_path):
    path = write(tmp_path, "c.csv", "external_id\nC1\n")

    with pytest.raises(CommandError, match="--map 'external_id' is not FIELD=COLUMN"):
        call_command("import_data", "customers", path, "--map", "external_id")

    assert Customer.objects.count() == 0


def test_import_spanning_several_batches_counts_every_row(tmp_path):
    lines = ["external_id,customer,placed_at,total"] + [f"O{i:05d},C{i % 7},2024-01-01,{i}.00" for i in range(1, 251)]
    lines.insert(100, "O00001,C1,2024-01-01,1.00")  # a duplicate that lands in a later batch
    path = write(tmp_path, "o.csv", "\n".join(lines) + "\n")

    report = import_file("orders", path, batch_size=40)

    assert (report.read, report.inserted, report.rejected, report.customers_created) == (251, 250, 1, 7)
    assert report.errors[0].line == 101
    assert Order.objects.count() == 250


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_batches_are_written_on_a_second_connection(tmp_path):
    lines = ["external_id,customer,placed_at,total"] + [f"O{i:05d},C{i % 11},2024-01-0{1 + i % 9},{i}.00" for i in range(1, 301)]
    lines[150] = "O00150,C5,not-a-date,1.00"
    path = write(tmp_path, "o.csv", "\n".join(lines) + "\n")
    errors = io.StringIO()

    report = import_file("orders", path, batch_size=25, errors_to=errors)
    again = import_file("orders", path, batch_size=25)

    assert (report.read, report.inserted, report.updated, report.rejected, report.customers_created) == (300, 299, 0, 1, 11)
    assert (again.inserted, again.updated, again.rejected, again.customers_created) == (0, 299, 1, 0)
    assert [row[:2] for row in error_rows(errors)] == [["151", "placed_at"]]
    assert Order.objects.count() == 299
    assert Order.objects.get(external_id="O00299").total == Decimal("299.00")


def test_a_progress_bar_can_follow_the_file_without_changing_the_result(tmp_path, capsys):
    path = write(tmp_path, "c.csv", "external_id,email\nC1,a@example.com\nC2,b@example.com\n")

    report = import_file("customers", path, progress=True)

    assert (report.read, report.inserted) == (2, 2)
    assert "c.csv" in capsys.readouterr().err


def test_backslashes_tabs_and_null_markers_in_cells_arrive_unchanged(tmp_path):
    content = 'external_id,first_name,city,attributes\nC1,"Back\\slash \\N","tab\there","{""note"": ""a\\\\b \\u00e9 \\""q\\""""}"\n'
    path = write(tmp_path, "c.csv", content)

    report = import_file("customers", path)

    assert (report.inserted, report.rejected) == (1, 0)
    customer = Customer.objects.get()
    assert (customer.first_name, customer.city) == ("Back\\slash \\N", "tab\there")
    assert customer.attributes == {"note": 'a\\b é "q"'}


# Hostile files: each bad row is refused with its line, column and reason, on both databases alike.
HOSTILE_JSONL = [
    ('{"external_id": "J1", "email": "nan@example.com", "attributes": {"score": NaN}}', "is not valid JSON (NaN is not a number JSON allows)"),
    ('{"external_id": "J2", "email": "inf@example.com", "attributes": {"score": Infinity}}', "is not valid JSON (Infinity is not a number JSON allows)"),
    ('{"external_id": "J3", "email": "big@example.com", "attributes": {"score": 1e999}}', "is not valid JSON (1e999 is too large a number)"),
    ('{"external_id": "J4", "email": "s@example.com", "first_name": "\\ud800"}', "column 'first_name' contains a lone surrogate, which is not a character"),
    ('{"external_id": "J5", "email": "deep@example.com", "attributes": ' + "[" * 5000 + "]" * 5000 + "}", "nests JSON deeper than 16 levels"),
    ('{"external_id": "J6", "email": "digits@example.com", "attributes": {"n": ' + "9" * 5000 + "}}", "is not valid JSON"),
    ('{"external_id": "J7", "email": "nul@example.com", "first_name": "A\\u0000B"}', "column 'first_name' contains a NUL character"),
]  # fmt: skip


def test_hostile_json_lines_are_refused_line_by_line(tmp_path):
    lines = [text for text, _ in HOSTILE_JSONL] + ['{"external_id": "OK", "email": "ok@example.com", "first_name": "Ok"}']
    path = write(tmp_path, "hostile.jsonl", "\n".join(lines) + "\n")
    errors = io.StringIO()

    report = import_file("customers", path, errors_to=errors)

    rows = error_rows(errors)
    assert (report.read, report.inserted, report.rejected) == (len(lines), 1, len(HOSTILE_JSONL))
    assert [row[0] for row in rows] == [str(number) for number in range(1, len(HOSTILE_JSONL) + 1)]
    for row, (_, reason) in zip(rows, HOSTILE_JSONL, strict=True):
        assert reason in row[3]
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["OK"]


def test_a_nul_byte_and_a_huge_cell_in_csv_are_refused_on_their_lines(tmp_path):
    huge = "x" * (50 * 1024 * 1024)
    content = f"external_id,email,first_name\nC1,a@example.com,A\x00nn\nC2,b@example.com,{huge}\nC3,c@example.com,Cat\n"
    path = write(tmp_path, "nul.csv", content)
    errors = io.StringIO()

    report = import_file("customers", path, errors_to=errors)

    assert (report.read, report.inserted, report.rejected) == (3, 1, 2)
    assert [row[0] for row in error_rows(errors)] == ["2", "3"]
    assert "column 'first_name' contains a NUL character" in error_rows(errors)[0][3]
    assert "longer than 1,048,576 characters" in error_rows(errors)[1][3]
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["C3"]


def test_an_unbalanced_quote_that_would_swallow_rows_refuses_the_file(tmp_path):
    path = write(tmp_path, "quote.csv", 'external_id,email,first_name\nC1,a@example.com,"Ann\nC2,b@example.com,Bob\nC3,c@example.com,Cat\n')

    with pytest.raises(ImportFailed, match="line 2: a quote opened on this line is never closed"):
        import_file("customers", path)

    assert Customer.objects.count() == 0


def test_a_quote_closed_later_that_swallowed_records_refuses_the_file(tmp_path):
    path = write(tmp_path, "quote.csv", 'external_id,email,first_name\nC1,a@example.com,"Ann\nC2,b@example.com,Bob"\nC3,c@example.com,Cat\n')

    with pytest.raises(ImportFailed, match="line 2: a quoted cell runs over lines 3-3 that look like records"):
        import_file("customers", path)

    assert Customer.objects.count() == 0


def test_a_real_multi_line_cell_is_kept(tmp_path):
    path = write(tmp_path, "notes.csv", 'external_id,email,first_name\nC1,a@example.com,"Ann\nMarie"\n')

    report = import_file("customers", path)

    assert (report.inserted, Customer.objects.get().first_name) == (1, "Ann\nMarie")


@pytest.mark.parametrize("total", ["\u0663", "1_000", "\uff11\uff12"])
def test_numbers_in_other_scripts_or_with_underscores_are_refused(tmp_path, total):
    path = write(tmp_path, "orders.csv", f"external_id,customer,placed_at,total\nO1,C1,2024-01-01,{total}\n")
    errors = io.StringIO()

    report = import_file("orders", path, errors_to=errors)

    assert report.rejected == 1
    assert error_rows(errors)[0][:2] == ["2", "total"]
    assert "is not a number written with the digits 0-9" in error_rows(errors)[0][3]
    assert Order.objects.count() == 0


def test_a_json_list_is_not_taken_for_a_first_name(tmp_path):
    path = write(tmp_path, "c.jsonl", '{"external_id": "J1", "email": "j@example.com", "first_name": ["Ann", "Bob"]}\n')
    errors = io.StringIO()

    report = import_file("customers", path, errors_to=errors)

    assert report.rejected == 1
    assert error_rows(errors)[0][1:] == ["first_name", '["Ann", "Bob"]', "first_name must be text or a number, not a JSON list"]
    assert Customer.objects.count() == 0
