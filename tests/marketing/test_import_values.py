"""Cell parsers: the value they return, or the exact reason they refuse."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from marketing.imports import values

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("19.90", Decimal("19.90")), ("5", Decimal("5.00")), ("19,90", Decimal("19.90")), ("1,299.00", Decimal("1299.00"))],
)
def test_amounts_in_common_spellings(text, expected):
    assert values.decimal()(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "'abc' is not a number"),
        ("-1", "'-1' is below 0"),
        ("1.999", "'1.999' has more than 2 decimal places"),
        ("NaN", "'NaN' is not a finite number"),
        ("1e12", "'1e12' is too large"),
    ],
)
def test_bad_amounts_say_why(text, reason):
    with pytest.raises(ValueError) as error:
        values.decimal()(text)

    assert str(error.value) == reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-12-31", datetime(2024, 12, 31, tzinfo=BERLIN)),
        ("2024-12-31 18:30", datetime(2024, 12, 31, 18, 30, tzinfo=BERLIN)),
        ("2024-12-31T18:30:00Z", datetime(2024, 12, 31, 18, 30, tzinfo=UTC)),
        ("2024-12-31T18:30:00+02:00", datetime(2024, 12, 31, 16, 30, tzinfo=UTC)),
        ("20241231", datetime(2024, 12, 31, tzinfo=BERLIN)),
        ("20241231183000", datetime(2024, 12, 31, 18, 30, tzinfo=BERLIN)),
    ],
)
def test_moments_without_an_offset_are_read_in_the_shop_zone(text, expected):
    assert values.datetime_parser(None, BERLIN)(text) == expected


def test_a_named_date_format_reads_day_first_dates():
    parsed = values.datetime_parser("%d/%m/%Y", UTC)("31/12/2024")

    assert parsed == datetime(2024, 12, 31, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("20240230", "'20240230' is not a real date (YYYYMMDD)"),
        ("0024-01-01", "'0024-01-01' has year 24, outside 1900-2100"),
        ("31/12/2024", "'31/12/2024' is not a date Kairos recognises"),
    ],
)
def test_bad_moments_say_why(text, reason):
    with pytest.raises(ValueError) as error:
        values.datetime_parser(None, UTC)(text)

    assert str(error.value).startswith(reason)


def test_dates_refuse_a_time_of_day():
    assert values.date_parser(None)("1990-05-17") == date(1990, 5, 17)
    with pytest.raises(ValueError, match="is a moment, not a date"):
        values.date_parser(None)("1990-05-17T10:00")


@pytest.mark.parametrize("text", ["a@b", "a b@example.com", "@example.com", "a@-example.com", "a@@example.com"])
def test_malformed_addresses_are_refused(text):
    with pytest.raises(ValueError, match="is not a valid e-mail address"):
        values.email(text)


def test_addresses_are_lower_cased():
    assert values.email("Ann.Lee+shop@Example.COM") == "ann.lee+shop@example.com"


@pytest.mark.parametrize(
    ("parser", "text", "expected"),
    [
        (values.country, "de", "DE"),
        (values.currency, "eur", "EUR"),
        (values.locale, "pt_BR", "pt-BR"),
        (values.boolean, "Yes", True),
        (values.boolean, "0", False),
        (values.time_zone, "Asia/Kathmandu", "Asia/Kathmandu"),
        (values.event_name, "cart_added", "cart_added"),
        (values.positive_integer, "3", 3),
    ],
)
def test_coded_values_are_normalised(parser, text, expected):
    assert parser(text) == expected


@pytest.mark.parametrize(
    ("parser", "text", "reason"),
    [
        (values.country, "Germany", "'Germany' is not a two-letter country code such as DE"),
        (values.currency, "€", "'€' is not a three-letter currency code such as EUR"),
        (values.time_zone, "Mars/Olympus", "'Mars/Olympus' is not an IANA time zone such as Europe/Berlin"),
        (values.positive_integer, "0", "'0' is not at least 1"),
        (values.json_object, "[1]", "not a JSON object"),
        (values.identifier(), "a\tb", "id 'a\\tb' contains a control or invisible character"),
        (values.text(3), "abcd", "longer than 3 characters"),
    ],
)
def test_bad_coded_values_say_why(parser, text, reason):
    with pytest.raises(ValueError) as error:
        parser(text)

    assert str(error.value) == reason


def test_ids_keep_leading_zeros():
    assert values.identifier()("000420") == "000420"


def test_offsets_are_kept_as_the_same_instant():
    parsed = values.datetime_parser(None, UTC)("2024-06-01T12:00:00-05:00")

    assert parsed.astimezone(UTC) == datetime(2024, 6, 1, 17, 0, tzinfo=UTC)
