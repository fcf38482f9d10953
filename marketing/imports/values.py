"""Parsers that turn one cell of an import into a typed value, or say exactly why they cannot.

Each parser takes the cell as text and returns the value, or raises `ValueError` whose message
is shown to the marketer next to the line and column. Blank cells never reach a parser.
"""

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from marketing.event_names import check_event_name

Parser = Callable[[str], Any]

# Years outside this window are typos (0024, 20024) rather than real orders or birthdays.
EARLIEST_YEAR = 1900
LATEST_YEAR = 2100

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$", re.ASCII)
_COUNTRY = re.compile(r"^[A-Za-z]{2}$", re.ASCII)
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$", re.ASCII)
_COMPACT_DATE = re.compile(r"^\d{8}$", re.ASCII)
_COMPACT_DATETIME = re.compile(r"^\d{14}$", re.ASCII)

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def text(max_length: int) -> Parser:
    """Return a parser for free text of at most `max_length` characters."""

    def parse(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters")
        return value

    return parse


def identifier(max_length: int = 255) -> Parser:
    """Return a parser for an id: kept as text, so 00042 stays 00042."""

    def parse(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"id longer than {max_length} characters")
        if not value.isprintable():
            raise ValueError(f"id {value!r} contains a control or invisible character")
        return value

    return parse


def email(value: str) -> str:
    """Parse an e-mail address, lower-cased."""
    address = value.strip().lower()
    if len(address) > 254 or not _EMAIL.match(address):
        raise ValueError(f"{value!r} is not a valid e-mail address")
    return address


def decimal(places: int = 2, minimum: Decimal | None = Decimal(0)) -> Parser:
    """Return a parser for an amount with at most `places` decimals, e.g. 19.90 or 1,299.00."""
    quantum = Decimal(1).scaleb(-places)
    plain = re.compile(rf"\d{{1,10}}(?:\.\d{{1,{places}}})?", re.ASCII)

    def parse(value: str) -> Decimal:
        _check_ascii_number(value)
        if plain.fullmatch(value):
            # The common case, checked by one regex: no sign, separators or exponent to judge.
            return Decimal(value).quantize(quantum)
        cleaned = value.replace(",", "") if "." in value else value.replace(",", ".")
        try:
            number = Decimal(cleaned)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        if minimum is not None and number < minimum:
            raise ValueError(f"{value!r} is below {minimum}")
        rounded = number.quantize(quantum)
        if rounded != number:
            raise ValueError(f"{value!r} has more than {places} decimal places")
        if abs(rounded) >= Decimal(10) ** 10:
            raise ValueError(f"{value!r} is too large")
        return rounded

    return parse


def _check_ascii_number(value: str) -> None:
    """Refuse what Python would read as a number but a person would not: other scripts' digits, 1_000."""
    if not value.isascii() or "_" in value:
        raise ValueError(f"{value!r} is not a number written with the digits 0-9")


def positive_integer(value: str) -> int:
    """Parse a whole number of at least 1."""
    _check_ascii_number(value)
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise ValueError(f"{value!r} is not at least 1")
    return number


def boolean(value: str) -> bool:
    """Parse yes/no, true/false, 1/0, on/off."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{value!r} is not yes/no, true/false or 1/0")


def country(value: str) -> str:
    """Parse an ISO 3166-1 alpha-2 country code, upper-cased."""
    if not _COUNTRY.match(value):
        raise ValueError(f"{value!r} is not a two-letter country code such as DE")
    return value.upper()


def currency(value: str) -> str:
    """Parse an ISO 4217 currency code, upper-cased."""
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise ValueError(f"{value!r} is not a three-letter currency code such as EUR")
    return value.upper()


def locale(value: str) -> str:
    """Parse a locale tag such as de-DE or pt_BR, written with a hyphen."""
    if not _LOCALE.match(value) or len(value) > 35:
        raise ValueError(f"{value!r} is not a locale such as de-DE")
    return value.replace("_", "-")


def time_zone(value: str) -> str:
    """Parse an IANA time zone name."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
    return value


def event_name(value: str) -> str:
    """Parse an event name by the one rule (marketing.event_names): snake_case, past tense, e.g. product_viewed."""
    return check_event_name(value)


def choice(choices: dict[str, str]) -> Parser:
    """Return a parser that maps any of the accepted spellings (case-insensitive) to a stored value."""
    accepted = ", ".join(sorted(set(choices.values())))

    def parse(value: str) -> str:
        try:
            return choices[value.strip().lower()]
        except KeyError:
            raise ValueError(f"{value!r} is not one of {accepted}") from None

    return parse


def json_object(value: str) -> dict:
    """Parse a JSON object written in a cell."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    return parsed


def _check_year(year: int, value: str) -> None:
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise ValueError(f"{value!r} has year {year}, outside {EARLIEST_YEAR}-{LATEST_YEAR}")


def _parse_naive(value: str, date_format: str | None) -> datetime:
    if date_format:
        try:
            return datetime.strptime(value, date_format)
        except ValueError:
            raise ValueError(f"{value!r} does not match the date format {date_format!r}") from None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    if _COMPACT_DATE.match(value):
        try:
            return datetime.strptime(value, "%Y%m%d")
        except ValueError:
            raise ValueError(f"{value!r} is not a real date (YYYYMMDD)") from None
    if _COMPACT_DATETIME.match(value):
        try:
            return datetime.strptime(value, "%Y%m%d%H%M%S")
        except ValueError:
            raise ValueError(f"{value!r} is not a real date and time (YYYYMMDDHHMMSS)") from None
    raise ValueError(
        f"{value!r} is not a date Kairos recognises; use ISO 8601 (2024-12-31 or 2024-12-31T18:30:00Z), "
        "YYYYMMDD, or name the format with --date-format, e.g. --date-format %d/%m/%Y"
    )


def datetime_parser(date_format: str | None, default_zone: tzinfo) -> Parser:
    """Return a parser for a moment; times without an offset are read in `default_zone`."""

    def parse(value: str) -> datetime:
        moment = _parse_naive(value, date_format)
        if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
            _check_year(moment.year, value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=default_zone)
        return moment

    return parse


def date_parser(date_format: str | None) -> Parser:
    """Return a parser for a calendar date (a time part, if any, must be midnight)."""

    def parse(value: str) -> date:
        moment = _parse_naive(value, date_format)
        _check_year(moment.year, value)
        if moment.timetz().replace(tzinfo=None) != time(0):
            raise ValueError(f"{value!r} is a moment, not a date")
        return moment.date()

    return parse


def content_digest(values: list[Any]) -> str:
    """Return a short hex digest of values, the same for the same content whatever their source.

    Times are compared in UTC and objects with sorted keys, so a row imported from a file and the
    same event sent to the API digest alike.
    """
    parts = []
    for value in values:
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat()
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        parts.append("" if value is None else str(value))
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()
