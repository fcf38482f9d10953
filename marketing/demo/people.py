"""The demo shop's customers as people: names, addresses, places, consent and profile attributes."""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from random import Random
from zoneinfo import ZoneInfo

from faker import Faker

EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # reserved (RFC 2606): a demo must never reach real inboxes
SENSITIVE_SHARE = 0.15  # customers who told the shop their birthday and gender
GENDERS = ("female", "male", "non-binary")
GENDER_WEIGHTS = (0.49, 0.48, 0.03)
ACQUISITION_CHANNELS = ("organic_search", "paid_search", "social", "referral", "newsletter", "affiliate", "direct")
CHANNEL_WEIGHTS = (0.28, 0.2, 0.16, 0.08, 0.1, 0.06, 0.12)


@dataclass(frozen=True)
class Locale:
    tag: str
    faker_locale: str
    country: str
    cities: tuple[tuple[str, str], ...]  # (city, IANA zone), biggest first
    weight: float


def in_zone(zone: str, *cities: str) -> tuple[tuple[str, str], ...]:
    """Pair each city with the zone."""
    return tuple((city, zone) for city in cities)


# Real cities rather than Faker's: customers cluster in big cities, a US city fixes its zone, and
# Faker builds some locales' city lists from a set, whose order changes from one process to the next.
LOCALES = (
    Locale(
        "en-US", "en_US", "US",
        in_zone("America/New_York", "New York", "Philadelphia", "Boston", "Atlanta", "Miami")
        + in_zone("America/Chicago", "Chicago", "Houston", "Dallas", "Minneapolis")
        + in_zone("America/Denver", "Denver", "Salt Lake City")
        + in_zone("America/Los_Angeles", "Los Angeles", "San Francisco", "Seattle", "San Diego", "Portland"),
        0.2,
    ),
    Locale(
        "de-DE", "de_DE", "DE",
        in_zone("Europe/Berlin", "Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf", "Leipzig", "Dresden", "Hannover", "Nürnberg", "Bremen"),
        0.28,
    ),
    Locale(
        "fr-FR", "fr_FR", "FR",
        in_zone("Europe/Paris", "Paris", "Marseille", "Lyon", "Toulouse", "Nice", "Nantes", "Strasbourg", "Montpellier", "Bordeaux", "Lille"),
        0.15,
    ),
    Locale(
        "en-GB", "en_GB", "GB",
        in_zone("Europe/London", "London", "Birmingham", "Manchester", "Leeds", "Glasgow", "Liverpool", "Bristol", "Edinburgh", "Sheffield", "Cardiff"),
        0.15,
    ),
    Locale(
        "es-ES", "es_ES", "ES",
        in_zone("Europe/Madrid", "Madrid", "Barcelona", "Valencia", "Sevilla", "Zaragoza", "Málaga", "Murcia", "Palma", "Bilbao"),
        0.1,
    ),
    Locale(
        "it-IT", "it_IT", "IT",
        in_zone("Europe/Rome", "Roma", "Milano", "Napoli", "Torino", "Palermo", "Genova", "Bologna", "Firenze", "Verona"),
        0.06,
    ),
    Locale(
        "nl-NL", "nl_NL", "NL",
        in_zone("Europe/Amsterdam", "Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Almere"),
        0.06,
    ),
)
CITY_SIZE_EXPONENT = 0.8  # the n-th biggest city holds about n^-0.8 of the biggest one's customers


@dataclass(frozen=True)
class Person:
    external_id: str
    email: str
    first_name: str
    last_name: str
    locale: str
    timezone: str
    country: str
    city: str
    birth_date: date | None
    gender: str


def build_fakers(rng: Random) -> dict[str, Faker]:
    """Return one Faker per locale, each seeded from `rng` so names repeat with the seed."""
    fakers = {}
    for locale in LOCALES:
        fake = Faker(locale.faker_locale)
        fake.seed_instance(rng.getrandbits(64))
        fakers[locale.tag] = fake
    return fakers


def draw_locale(rng: Random) -> tuple[Locale, str, str]:
    """Return a locale, a city in it, big ones more often, and the city's time zone."""
    locale = rng.choices(LOCALES, weights=[locale.weight for locale in LOCALES])[0]
    weights = [rank**-CITY_SIZE_EXPONENT for rank in range(1, len(locale.cities) + 1)]
    city, timezone = rng.choices(locale.cities, weights=weights)[0]
    return locale, city, timezone


@cache
def standard_utc_offset_hours(timezone: str, year: int) -> int:
    """Return the zone's whole-hour offset from UTC in winter; the demo ignores daylight saving."""
    offset = datetime(year, 1, 15, 12, tzinfo=ZoneInfo(timezone)).utcoffset() or timedelta(0)
    return round(offset.total_seconds() / 3600)


def ascii_slug(text: str) -> str:
    """Return the text folded to lower-case ASCII letters: "Müller-Lüdenscheidt" -> "mullerludenscheidt"."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", folded.lower())


def make_email(rng: Random, first_name: str, last_name: str, number: int) -> str:
    """Return an address on a reserved domain; the customer number keeps it unique."""
    first, last = ascii_slug(first_name) or "customer", ascii_slug(last_name) or "shopper"
    # Slugs hold letters only, so the trailing number can never merge with another customer's name.
    local = rng.choice((f"{first}.{last}{number}", f"{first[0]}{last}{number}", f"{first}_{last[0]}{number}"))
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def draw_person(
    rng: Random, fakers: dict[str, Faker], number: int, locale: Locale, city: str, timezone: str, today: date
) -> Person:
    """Return customer `number`, a plausible person from the locale."""
    fake = fakers[locale.tag]
    gender = rng.choices(GENDERS, weights=GENDER_WEIGHTS)[0]
    if gender == "female":
        first_name = fake.first_name_female()
    elif gender == "male":
        first_name = fake.first_name_male()
    else:
        first_name = fake.first_name()
    last_name = fake.last_name()
    sensitive = rng.random() < SENSITIVE_SHARE
    birth_date = None
    if sensitive:
        # Drawn from `rng` rather than Faker's date_of_birth, which counts back from the real today.
        birth_date = today - timedelta(days=rng.randint(18 * 365, 78 * 365))
    return Person(
        external_id=f"C{number:06d}",
        email=make_email(rng, first_name, last_name, number),
        first_name=first_name,
        last_name=last_name,
        locale=locale.tag,
        timezone=timezone,
        country=locale.country,
        city=city,
        birth_date=birth_date,
        gender=gender if sensitive else "",
    )


def draw_channel(rng: Random) -> str:
    """Return how the customer first found the shop."""
    return rng.choices(ACQUISITION_CHANNELS, weights=CHANNEL_WEIGHTS)[0]
