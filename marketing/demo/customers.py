"""One demo customer end to end: the person, their hidden behaviour and what they did. Pure, no Django."""

from dataclasses import dataclass
from datetime import date
from random import Random

from faker import Faker

from marketing.demo.behaviour import Profile, Segment, Timeline, draw_profile, simulate_customer
from marketing.demo.catalogue import CATEGORIES, Catalogue
from marketing.demo.people import Person, draw_channel, draw_locale, draw_person, standard_utc_offset_hours
from marketing.demo.seasons import Calendar

LOYALTY_TIERS = ("none", "bronze", "silver", "gold")


@dataclass(frozen=True)
class DemoCustomer:
    person: Person
    profile: Profile
    attributes: dict
    timeline: Timeline


def draw_customer(
    rng: Random, fakers: dict[str, Faker], number: int, catalogue: Catalogue, calendar: Calendar, today: date
) -> DemoCustomer:
    """Return customer `number`: who they are, how they behave and what they did."""
    locale, city, timezone = draw_locale(rng)
    profile = draw_profile(rng, calendar.days, standard_utc_offset_hours(timezone, today.year), calendar.acquisition_bursts)
    person = draw_person(rng, fakers, number, locale, city, timezone, today)
    attributes = {
        "loyalty_tier": draw_loyalty_tier(rng, profile.segment),
        "acquisition_channel": draw_channel(rng),
        "preferred_category": CATEGORIES[profile.categories[0]].name,
    }
    return DemoCustomer(person, profile, attributes, simulate_customer(rng, profile, catalogue, calendar))


def draw_loyalty_tier(rng: Random, segment: Segment) -> str:
    """Return a loyalty tier that only loosely follows the hidden segment, as tiers lag behaviour."""
    weights = {Segment.LOYAL: (1, 3, 4, 4), Segment.LAPSING: (2, 4, 3, 2)}.get(segment, (6, 4, 1.5, 0.5))
    return rng.choices(LOYALTY_TIERS, weights=weights)[0]
