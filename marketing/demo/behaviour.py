"""How the demo shop's customers behave: latent segments, shopping episodes, browsing and e-mail.

Everything here is a pure function of a seeded `Random`. A profile is drawn once per customer,
then `simulate_customer` walks the calendar day by day. Every order ends a shopping episode that
began with browsing a few days earlier, so engagement rises ahead of purchases; abandoned
episodes, idle browsing and newsletter opens add engagement that leads nowhere, and a latent
propensity shared by buying, browsing and opening ties the three together only loosely.

Shaped like a real shop's history: customers join over the whole of it, many in a few acquisition
bursts (Cyber Week, campaigns); a quarter buy once and never again; most of the others go dormant
at some point, their interest and their visits fading together; buyers of consumables come back
when what they bought runs out, so their chance of ordering peaks weeks after an order rather
than right after it; and demand follows the seasons of the calendar.
"""

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from itertools import accumulate
from random import Random
from typing import NamedTuple

import numpy as np

from marketing.demo.catalogue import CATEGORIES, Catalogue
from marketing.demo.seasons import Calendar

SECONDS_PER_DAY = 86_400
CENT = Decimal("0.01")
MAX_BASKET_LINES = 5
MAX_RESEARCH_DAYS = 14
REPEAT_FADE_DAYS = 30.0  # how fast the pull back to the shop after an order fades
JUST_BOUGHT_DAYS = 3  # nobody starts another shopping trip right after checking out
JUST_BOUGHT_FACTOR = 0.2
ONE_TIME_AFTER_ORDER_FACTOR = 0.03
WELCOME_DAYS = 7.0  # new accounts are opened to buy: the first week after sign-up is busy
WELCOME_BOOST = 3.0
NUDGE_DAYS = 2  # a clicked newsletter keeps the customer in a buying mood for the next two days
NUDGE_FACTOR = 3.0
SHOPPING_ENGAGEMENT_FACTOR = 1.8  # opens and clicks of a customer in the middle of an episode
RESEARCH_VISIT_CHANCE = 0.4
DIRECT_BUYER_SHARE = 0.15  # know what they want: order on the day they first look, barely browse
CART_ON_IDLE_VISIT_CHANCE = 0.04
CART_ON_ABANDONED_EPISODE_CHANCE = 0.5
CHECKOUT_ON_ABANDONED_EPISODE_CHANCE = 0.15
STRAY_CATEGORY_CHANCE = 0.2  # looking outside the favourite categories
BASE_CLICK_RATE = 0.15  # of opened newsletters
COUPON_CHANCE = 0.05
CANCELLED_SHARE, REFUNDED_SHARE = 0.03, 0.045
PENDING_DAYS, PENDING_CHANCE = 2, 0.5
CONSENT_STATES, CONSENT_WEIGHTS = ("opted_in", "opted_out", "unknown"), (0.78, 0.1, 0.12)
DEVICES, DEVICE_WEIGHTS = ("mobile", "desktop", "tablet"), (0.55, 0.35, 0.1)
SOURCES, SOURCE_CUM_WEIGHTS = ("direct", "search", "social", "ads"), (0.35, 0.7, 0.85, 1.0)
BOUGHT_IN_MULTIPLES = frozenset(category.name for category in CATEGORIES if category.bought_in_multiples)
# Local hours 0-23: a lunch bump and an evening peak, little at night.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 1, 2, 4, 5, 5, 5, 5, 7, 7, 5, 5, 5, 6, 8, 10, 11, 10, 7, 4)
HOURS, HOUR_CUM_WEIGHTS = tuple(range(24)), tuple(accumulate(HOUR_WEIGHTS))
WELCOME_HORIZON_DAYS = 35  # past it the welcome boost is below 1 %


class Segment(StrEnum):
    LOYAL = "loyal"
    OCCASIONAL = "occasional"
    ONE_TIME = "one_time"
    LAPSING = "lapsing"
    NEW = "new"
    BARGAIN = "bargain"
    BROWSER = "browser"


@dataclass(frozen=True)
class Traits:
    share: float
    episodes_per_year: float  # shopping episodes at average demand
    conversion: float  # share of episodes that end in an order
    sessions_per_year: float  # idle browsing outside episodes
    open_rate: float  # of newsletters
    basket_mean: float  # order lines before the cap at MAX_BASKET_LINES
    repeat_boost: float  # extra episode rate right after an order, fading over REPEAT_FADE_DAYS
    research_days: float  # mean days between an episode's first visit and its order
    existing_share: float  # signed up before the generated history starts
    sale_appetite: float  # episode rate multiplier on sale days


TRAITS = {
    Segment.LOYAL: Traits(0.08, 6.5, 0.75, 3.5, 0.45, 2.4, 1.0, 2.0, 0.45, 1.3),
    Segment.OCCASIONAL: Traits(0.28, 2.4, 0.55, 1, 0.22, 1.8, 0.6, 3.0, 0.3, 1.3),
    Segment.ONE_TIME: Traits(0.25, 1.8, 0.5, 0.7, 0.12, 1.4, 0.0, 2.0, 0.2, 1.2),
    Segment.LAPSING: Traits(0.15, 6.5, 0.65, 2, 0.35, 2.0, 0.6, 2.5, 0.45, 1.2),
    Segment.NEW: Traits(0.09, 4, 0.6, 2, 0.35, 1.8, 0.6, 2.5, 0.0, 1.3),
    Segment.BARGAIN: Traits(0.11, 1.6, 0.6, 1.5, 0.4, 2.8, 0.3, 3.5, 0.3, 5.0),
    Segment.BROWSER: Traits(0.04, 1.2, 0.15, 8, 0.3, 1.5, 0.0, 4.0, 0.3, 1.0),
}
NEW_SEGMENT_MAX_AGE_DAYS = 90
EXISTING_MAX_AGE_DAYS = 3 * 365
LAPSE_START_SHARE = 0.6  # lapsing customers start to drift away within the first 60 % of the history
# Customers who are not "lapsing" may still go dormant one day, this often, some time after joining.
DORMANCY_CHANCE = 0.35
# A share of the customers who join during the history do so in an acquisition burst of this length.
BURST_SHARE = 0.35
BURST_DAYS = 12
# Buyers of consumables (beauty, kids, books) who restock: after an order their chance of another
# falls, then peaks around their own restocking interval, then fades.
RESTOCKING_CATEGORIES = frozenset({"beauty", "kids", "books"})
RESTOCKER_SHARE = 0.6
RESTOCK_DAYS = (25, 70)
RESTOCK_FLOOR = 0.25
RESTOCK_PEAK = 5.0
RESTOCK_WIDTH = 0.3  # of the interval


@dataclass(frozen=True)
class Profile:
    segment: Segment
    signup_day: int  # negative for customers who joined before the history starts
    consent: str
    episode_rate: float  # per day at average demand
    conversion: float
    session_rate: float  # idle visits per day at average demand
    open_rate: float
    click_rate: float
    basket_mean: float
    repeat_boost: float
    research_days: float
    sale_appetite: float
    discount_taking: float  # chance to use a sale price when one is on
    lapse_day: int  # interest fades from this day on; past the history for those who never go dormant
    lapse_days: float
    restock_days: float  # the restocking interval of a buyer of consumables; 0 for everyone else
    categories: tuple[int, ...]  # favourite CATEGORIES indexes
    category_weights: tuple[float, ...]  # cumulative
    device: str
    utc_offset_hours: int


class Interaction(NamedTuple):
    at: int  # seconds since the start of the history
    name: str
    properties: dict


class Line(NamedTuple):
    product: int
    quantity: int
    unit_price: Decimal


class Purchase(NamedTuple):
    at: int
    lines: tuple[Line, ...]
    status: str


class Timeline(NamedTuple):
    signed_up_at: int
    interactions: list[Interaction]
    purchases: list[Purchase]


def spread(rng: Random, latent: float, loading: float, noise: float) -> float:
    """Return a log-normal multiplier with mean 1: `loading` on the shared latent, `noise` of its own."""
    return math.exp(loading * latent + noise * rng.gauss(0, 1) - (loading**2 + noise**2) / 2)


def draw_signup_day(rng: Random, segment: Segment, days: int, bursts: tuple[int, ...]) -> int:
    """Return the day the customer joins: before the history, in an acquisition burst, or any day of it."""
    if segment is Segment.NEW:
        return days - rng.randint(1, min(NEW_SEGMENT_MAX_AGE_DAYS, days))
    if rng.random() < TRAITS[segment].existing_share:
        return -rng.randint(1, EXISTING_MAX_AGE_DAYS)
    if bursts and rng.random() < BURST_SHARE:
        return min(days - 1, rng.choice(bursts) + rng.randrange(BURST_DAYS))
    return rng.randrange(days)


def draw_lapse(rng: Random, segment: Segment, signup_day: int, days: int) -> tuple[int, float]:
    """Return the day the customer's interest starts to fade and how fast, or a day past the history."""
    if segment is Segment.LAPSING:
        return rng.randint(0, int(days * LAPSE_START_SHARE)), rng.uniform(30, 90)
    if segment is not Segment.LOYAL and rng.random() < DORMANCY_CHANCE:
        return rng.randint(max(0, signup_day) + 30, max(0, signup_day) + 30 + days), rng.uniform(20, 60)
    return days + 1, rng.uniform(30, 90)


def draw_profile(rng: Random, days: int, utc_offset_hours: int, bursts: tuple[int, ...] = ()) -> Profile:
    """Return a customer's hidden behaviour: segment, rates and tastes."""
    segment = rng.choices(list(TRAITS), weights=[traits.share for traits in TRAITS.values()])[0]
    traits = TRAITS[segment]
    signup_day = draw_signup_day(rng, segment, days, bursts)
    latent = rng.gauss(0, 1)
    direct = rng.random() < DIRECT_BUYER_SHARE
    favourites = rng.sample(range(len(CATEGORIES)), rng.randint(1, 3))
    lapse_day, lapse_days = draw_lapse(rng, segment, signup_day, days)
    restocks = CATEGORIES[favourites[0]].name in RESTOCKING_CATEGORIES and segment is not Segment.ONE_TIME
    restock_days = rng.uniform(*RESTOCK_DAYS) if restocks and rng.random() < RESTOCKER_SHARE else 0.0
    cumulative, total = [], 0.0
    for rank in range(len(favourites)):
        total += 0.5**rank
        cumulative.append(total)
    return Profile(
        segment=segment,
        signup_day=signup_day,
        consent=rng.choices(CONSENT_STATES, weights=CONSENT_WEIGHTS)[0],
        episode_rate=traits.episodes_per_year / 365 * spread(rng, latent, 0.5, 0.4),
        conversion=min(0.95, traits.conversion * spread(rng, latent, 0.15, 0.15)),
        session_rate=traits.sessions_per_year / 365 * spread(rng, latent, 0.5, 0.6) * (0.3 if direct else 1.0),
        open_rate=min(0.9, traits.open_rate * spread(rng, latent, 0.3, 0.5)),
        click_rate=min(0.6, BASE_CLICK_RATE * spread(rng, latent, 0.3, 0.4)),
        basket_mean=traits.basket_mean,
        repeat_boost=traits.repeat_boost,
        research_days=0.2 if direct else traits.research_days,
        sale_appetite=traits.sale_appetite,
        discount_taking=0.85 if segment is Segment.BARGAIN else 0.4,
        lapse_day=lapse_day,
        lapse_days=lapse_days,
        restock_days=restock_days,
        categories=tuple(favourites),
        category_weights=tuple(cumulative),
        device=rng.choices(DEVICES, weights=DEVICE_WEIGHTS)[0],
        utc_offset_hours=utc_offset_hours,
    )


def interest(profile: Profile, day: int) -> float:
    """Return how much of the customer's original interest in the shop is left on the day."""
    if day <= profile.lapse_day:
        return 1.0
    return math.exp(-(day - profile.lapse_day) / profile.lapse_days)


def episode_pressure(profile: Profile, calendar: Calendar) -> list[float]:
    """Return each day's chance of starting a shopping episode, before recent history bends it."""
    mix = category_mix(profile, calendar)
    return [
        profile.episode_rate * demand * interest(profile, day) * (profile.sale_appetite if on_sale else 1.0) * mix[day]
        for day, (demand, on_sale) in enumerate(zip(calendar.demand, calendar.on_sale, strict=True))
    ]


def category_weights(profile: Profile) -> list[float]:
    """Return the chance that an episode of the customer's is about each category, all days alike."""
    weights = [STRAY_CATEGORY_CHANCE / len(CATEGORIES)] * len(CATEGORIES)
    cumulative = profile.category_weights
    for category, before, after in zip(profile.categories, (0.0, *cumulative), cumulative, strict=False):
        weights[category] += (1 - STRAY_CATEGORY_CHANCE) * (after - before) / cumulative[-1]
    return weights


def category_mix(profile: Profile, calendar: Calendar) -> list[float]:
    """Return each day's demand of the categories the customer shops, weighted by how often they do:
    a fan of a growing category shops more and more, a fan of a declining one less."""
    if not calendar.category_demand:
        return [1.0] * calendar.days
    return (np.array(category_weights(profile)) @ calendar.category_matrix).tolist()


def pick_order_category(rng: Random, profile: Profile, calendar: Calendar, day: int) -> int:
    """Return the category a shopping episode starting on the day is about, as its demand that day has it."""
    weights = category_weights(profile)
    if calendar.category_demand:
        weights = [weight * calendar.category_demand[category][day] for category, weight in enumerate(weights)]
    return rng.choices(range(len(CATEGORIES)), weights=weights)[0]


def browsing_chances(profile: Profile, calendar: Calendar) -> list[float]:
    """Return each day's chance of an idle visit; even a lapsed customer drops by now and then."""
    return [
        profile.session_rate * demand * (0.3 + 0.7 * interest(profile, day))
        for day, demand in enumerate(calendar.demand)
    ]


def momentum(profile: Profile, day: int, last_order: int | None, nudged: bool) -> float:
    """Return the factor by which sign-up, the last order and a clicked newsletter move episode chance."""
    factor = NUDGE_FACTOR if nudged else 1.0
    since_signup = day - profile.signup_day
    if since_signup < WELCOME_HORIZON_DAYS:
        factor *= 1 + WELCOME_BOOST * math.exp(-since_signup / WELCOME_DAYS)
    if last_order is not None:
        since = day - last_order
        if profile.segment is Segment.ONE_TIME:
            factor *= ONE_TIME_AFTER_ORDER_FACTOR
        elif since < JUST_BOUGHT_DAYS:
            factor *= JUST_BOUGHT_FACTOR
        elif profile.restock_days:
            due = (since - profile.restock_days) / (RESTOCK_WIDTH * profile.restock_days)
            factor *= RESTOCK_FLOOR + RESTOCK_PEAK * math.exp(-(due**2))
        else:
            factor *= 1 + profile.repeat_boost * math.exp(-since / REPEAT_FADE_DAYS)
    return factor


def basket_size(rng: Random, mean: float) -> int:
    """Return 1-5 order lines, geometric around the mean."""
    size, more = 1, 1 - 1 / mean
    while size < MAX_BASKET_LINES and rng.random() < more:
        size += 1
    return size


def pick_category(rng: Random, profile: Profile) -> int:
    """Return a category the customer looks at: mostly a favourite, sometimes anything."""
    if rng.random() < STRAY_CATEGORY_CHANCE:
        return rng.randrange(len(CATEGORIES))
    return rng.choices(profile.categories, cum_weights=profile.category_weights)[0]


def visit_start(rng: Random, profile: Profile, day: int) -> int:
    """Return when a visit on the day starts, at a local hour shoppers like, in history seconds."""
    local_hour = rng.choices(HOURS, cum_weights=HOUR_CUM_WEIGHTS)[0]
    second = ((local_hour - profile.utc_offset_hours) % 24) * 3600 + rng.randrange(3600)
    # Visits last under an hour, so starting before 23:00 keeps each one on its own UTC day.
    return day * SECONDS_PER_DAY + min(second, SECONDS_PER_DAY - 3600)


def visit(rng: Random, catalogue: Catalogue, at: int, source: str, device: str, products: list[int], out: list) -> int:
    """Record a session viewing the products in turn; return the time of its last view."""
    out.append(Interaction(at, "session_started", {"source": source, "device": device}))
    for product in products:
        at += rng.randint(15, 150)
        out.append(Interaction(at, "product_viewed", catalogue.tag(product)))
    return at


def browse(rng: Random, profile: Profile, catalogue: Catalogue, day: int, source: str, out: list) -> None:
    """Record a visit without intent to buy: a few views, rarely something put in the cart."""
    category = pick_category(rng, profile)
    products = [catalogue.pick(rng, category) for _ in range(basket_size(rng, 1.6))]
    at = visit(rng, catalogue, visit_start(rng, profile, day), source, profile.device, products, out)
    if rng.random() < CART_ON_IDLE_VISIT_CHANCE:
        out.append(Interaction(at + rng.randint(5, 60), "cart_added", {**catalogue.tag(products[-1]), "quantity": 1}))


def price_lines(rng: Random, profile: Profile, catalogue: Catalogue, calendar: Calendar, day: int, basket: list[int]) -> tuple[Line, ...]:
    """Return the order lines for the basket, all at one discount when the customer takes one."""
    discount = 0
    if calendar.on_sale[day] and rng.random() < profile.discount_taking:
        discount = rng.choice((10, 20, 30))
    elif rng.random() < COUPON_CHANCE:
        discount = 10
    lines = []
    for product in basket:
        spec = catalogue.products[product]
        quantity = 1
        if rng.random() < (0.3 if spec.category in BOUGHT_IN_MULTIPLES else 0.1):
            quantity = 2 if rng.random() < 0.75 else 3
        unit_price = (spec.price * (100 - discount) / 100).quantize(CENT, ROUND_HALF_UP)
        lines.append(Line(product, quantity, unit_price))
    return tuple(lines)


def order_status(rng: Random, calendar: Calendar, day: int) -> str:
    """Return the order's status today: a few are cancelled or refunded, the newest may be pending."""
    draw = rng.random()
    if draw < CANCELLED_SHARE:
        return "cancelled"
    if draw < CANCELLED_SHARE + REFUNDED_SHARE:
        return "refunded"
    if day >= calendar.days - PENDING_DAYS and rng.random() < PENDING_CHANCE:
        return "pending"
    return "completed"


def shop(rng: Random, profile: Profile, catalogue: Catalogue, calendar: Calendar, start: int, out: list) -> tuple[int, Purchase | None]:
    """Record a shopping episode starting on the day; return its last day and its order, if any."""
    converts = rng.random() < profile.conversion
    if converts:
        length = min(MAX_RESEARCH_DAYS, int(rng.expovariate(1 / profile.research_days)))
    else:
        length = rng.randint(0, 3)
    end = start + length
    category = pick_order_category(rng, profile, calendar, start)
    basket = list(dict.fromkeys(catalogue.pick(rng, category) for _ in range(basket_size(rng, profile.basket_mean))))
    source = rng.choices(SOURCES, cum_weights=SOURCE_CUM_WEIGHTS)[0]
    for day in range(start, min(end, calendar.days)):
        if day == start or rng.random() < RESEARCH_VISIT_CHANCE:
            looked_at = [catalogue.pick(rng, category) for _ in range(rng.randint(0, 1))]
            visit(rng, catalogue, visit_start(rng, profile, day), source, profile.device, looked_at + basket[:1], out)
    if end >= calendar.days:
        return end, None  # the order would fall after the history ends
    at = visit(rng, catalogue, visit_start(rng, profile, end), source, profile.device, basket, out)
    if converts or rng.random() < CART_ON_ABANDONED_EPISODE_CHANCE:
        for product in basket:
            at += rng.randint(10, 90)
            out.append(Interaction(at, "cart_added", {**catalogue.tag(product), "quantity": 1}))
    if not converts:
        if rng.random() < CHECKOUT_ON_ABANDONED_EPISODE_CHANCE:
            out.append(Interaction(at + rng.randint(20, 120), "checkout_started", {"items": len(basket)}))
        return end, None
    lines = price_lines(rng, profile, catalogue, calendar, end, basket)
    at += rng.randint(20, 120)
    out.append(Interaction(at, "checkout_started", {"items": len(lines)}))
    return end, Purchase(at + rng.randint(60, 420), lines, order_status(rng, calendar, end))


def read_newsletter(rng: Random, profile: Profile, catalogue: Catalogue, day: int, campaign: str, shopping: bool, out: list) -> bool:
    """Record whether the customer opens and clicks the day's newsletter; return whether they clicked."""
    keen = SHOPPING_ENGAGEMENT_FACTOR if shopping else 1.0
    if rng.random() >= profile.open_rate * keen * (0.3 + 0.7 * interest(profile, day)):
        return False
    # Newsletters leave at 09:00 local time; most opens follow within a few hours.
    sent = day * SECONDS_PER_DAY + ((9 - profile.utc_offset_hours) % 24) * 3600
    opened = min(sent + int(rng.expovariate(1 / 10_800)), (day + 1) * SECONDS_PER_DAY - 1800)
    out.append(Interaction(opened, "email_opened", {"campaign": campaign}))
    if rng.random() >= profile.click_rate * keen:
        return False
    clicked = opened + rng.randint(5, 300)
    out.append(Interaction(clicked, "email_clicked", {"campaign": campaign}))
    category = pick_category(rng, profile)
    products = [catalogue.pick(rng, category) for _ in range(basket_size(rng, 1.5))]
    visit(rng, catalogue, clicked + 2, "email", profile.device, products, out)
    return True


def simulate_customer(rng: Random, profile: Profile, catalogue: Catalogue, calendar: Calendar) -> Timeline:
    """Return everything the customer does over the history, in time order."""
    out: list[Interaction] = []
    purchases: list[Purchase] = []
    last_order: int | None = None
    episode_end = nudged_until = -1
    mailable = profile.consent == "opted_in"
    pressure = episode_pressure(profile, calendar)
    browsing = browsing_chances(profile, calendar)
    welcome_until = profile.signup_day + WELCOME_HORIZON_DAYS
    # The day loop runs for every customer-day, so the cheap common case skips `momentum`.
    for day in range(max(0, profile.signup_day), calendar.days):
        shopping = day <= episode_end
        campaign = calendar.campaigns[day]
        if mailable and campaign and read_newsletter(rng, profile, catalogue, day, campaign, shopping, out):
            nudged_until = day + NUDGE_DAYS
        if not shopping:
            chance = pressure[day]
            if last_order is not None or day <= nudged_until or day < welcome_until:
                chance *= momentum(profile, day, last_order, day <= nudged_until)
            if rng.random() < chance:
                episode_end, purchase = shop(rng, profile, catalogue, calendar, day, out)
                if purchase is not None:
                    purchases.append(purchase)
                    last_order = episode_end
        if rng.random() < browsing[day]:
            browse(rng, profile, catalogue, day, rng.choices(SOURCES, cum_weights=SOURCE_CUM_WEIGHTS)[0], out)
    out.sort(key=lambda interaction: interaction.at)
    signed_up_at = profile.signup_day * SECONDS_PER_DAY + rng.randrange(SECONDS_PER_DAY)
    if out:
        signed_up_at = min(signed_up_at, out[0].at - 60)  # the account exists before its first visit
    return Timeline(signed_up_at, out, purchases)
