"""The context every e-mail template renders with: plain data, documented once, here.

Templates see dictionaries, lists, text and numbers only, never ORM objects, settings or requests,
so a template can read exactly what is documented below and nothing else.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from decimal import Decimal

from django.conf import settings
from django.utils.module_loading import import_string

# What a template may use, with a description; the admin shows it under the editor and the lint
# checks templates against it.
CONTEXT_DOCUMENTATION: dict[str, dict[str, str] | str] = {
    "customer": {
        "external_id": "The shop's id for the customer.",
        "email": "The address the message goes to.",
        "first_name": "First name; may be blank.",
        "last_name": "Last name; may be blank.",
        "full_name": "First and last name, or blank.",
        "greeting_name": "The first name, or 'there' when it is blank.",
        "locale": "BCP 47 tag such as de-DE; may be blank.",
        "timezone": "IANA zone such as Europe/Berlin; may be blank.",
        "country": "ISO 3166-1 alpha-2 code; may be blank.",
        "city": "City; may be blank.",
        "birth_date": "YYYY-MM-DD, or blank.",
        "attributes": "The customer's custom attributes, e.g. customer.attributes.get('loyalty_tier').",
    },
    "recommendations": (
        "Up to ten products picked for this customer, best first, all in stock: each with sku, name, url, "
        "image_url, price, currency, price_text (e.g. '19.90 EUR', blank without a price) and category; "
        "recommendations[:4] shows four. Image and price may be blank. Empty until a recommender is active."
    ),
    "category_recommendations": (
        "Picks from one category, the customer's own first, then the category's popular products: "
        "category_recommendations['Shoes'][:4]; an unknown category gives an empty list."
    ),
    "campaign": {"name": "The campaign or broadcast sending this message."},
    "trigger": (
        "What started the customer on the campaign, e.g. trigger.get('properties') of the event, or a price drop's "
        "trigger.get('sku'); empty for broadcasts."
    ),
    "links": {"unsubscribe": "The customer's unsubscribe page.", "shop": "The shop's home page."},
    "shop": {
        "name": "The shop's name.",
        "url": "The shop's home page.",
        "postal_address": "The shop's postal address.",
    },
    "subject": "The rendered subject line (inside the HTML and text parts).",
    "message": {
        "subject": "Replies only: the subject of the customer's message; may be blank.",
        "excerpt": "Its first 300 characters, as the customer wrote them.",
        "received_at": "When it arrived, ISO 8601 in UTC.",
        "received_on": "The day it arrived, YYYY-MM-DD.",
        "language": "en, zh, or other.",
        "intent": "What Kairos read it as, e.g. order_status.",
        "order_reference": "An order number it named that is not one of the customer's orders; blank otherwise.",
    },
    "order": {
        "external_id": "Replies only: the order the message is about (the one it names, else the latest); "
        "the whole of order is empty when the customer has none.",
        "named": "True when the message named this order, false when it is simply the latest.",
        "status": "pending, completed, cancelled or refunded.",
        "status_label": "The status in English words.",
        "placed_at": "When it was placed, ISO 8601 in UTC.",
        "placed_on": "The day it was placed, YYYY-MM-DD.",
        "total": "Its total, e.g. 39.80.",
        "currency": "ISO 4217 code, e.g. EUR.",
    },
}

CUSTOMER_FIELDS = (
    "external_id",
    "email",
    "first_name",
    "last_name",
    "locale",
    "timezone",
    "country",
    "city",
    "birth_date",
    "attributes",
)
RECOMMENDATION_FIELDS = ("sku", "name", "url", "image_url", "price", "currency", "category")

# Products a message shows in `recommendations`; a category's list is as long.
RECOMMENDATIONS_PER_MESSAGE = 10

RecommendationSource = Callable[[list[int]], dict[int, list[dict]]]


def customer_data(row: dict) -> dict:
    """Return the template view of a customer from a dict of CUSTOMER_FIELDS (e.g. a `.values()` row)."""
    first, last = row.get("first_name") or "", row.get("last_name") or ""
    birth = row.get("birth_date")
    return {
        "external_id": row.get("external_id") or "",
        "email": row.get("email") or "",
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}".strip(),
        "greeting_name": first or "there",
        "locale": row.get("locale") or "",
        "timezone": row.get("timezone") or "",
        "country": row.get("country") or "",
        "city": row.get("city") or "",
        "birth_date": birth.isoformat() if isinstance(birth, date) else (birth or ""),
        "attributes": dict(row.get("attributes") or {}),
    }


def product_data(row: dict) -> dict:
    """Return the template view of a product from a dict of RECOMMENDATION_FIELDS."""
    price = row.get("price")
    price = f"{price:.2f}" if isinstance(price, Decimal | float | int) else str(price or "")
    currency = row.get("currency") or ""
    return {
        "sku": row.get("sku") or "",
        "name": row.get("name") or "",
        "url": row.get("url") or "",
        "image_url": row.get("image_url") or "",
        "price": price,
        "currency": currency,
        "price_text": f"{price} {currency}".strip() if price else "",
        "category": row.get("category") or "",
    }


class CategoryPicks(Mapping):
    """The recipient's picks by category, each list built only when a template asks for it."""

    def __init__(self, products: list[dict]):
        self._products = products
        self._built: dict[str, list[dict]] = {}

    def __getitem__(self, category: str) -> list[dict]:
        if category not in self._built:
            self._built[category] = [product for product in self._products if product["category"] == category][
                :RECOMMENDATIONS_PER_MESSAGE
            ]
        return self._built[category]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(product["category"] for product in self._products))

    def __len__(self) -> int:
        return len({product["category"] for product in self._products})


def shop_data() -> dict:
    return {"name": settings.SHOP_NAME, "url": settings.SHOP_URL, "postal_address": settings.SHOP_POSTAL_ADDRESS}


def build_context(
    customer: dict,
    *,
    recommendations: Iterable[dict] = (),
    campaign_name: str = "",
    unsubscribe_url: str = "",
    trigger: dict | None = None,
    message: dict | None = None,
    order: dict | None = None,
) -> dict:
    """Assemble the documented context for one recipient (`message` and `order` for replies).

    `recommendations` may be longer than a message shows: the first ten become `recommendations`, and
    all of them feed `category_recommendations`.
    """
    products = [product_data(product) for product in recommendations]
    return {
        "message": dict(message or {}),
        "order": dict(order or {}),
        "customer": customer,
        "recommendations": products[:RECOMMENDATIONS_PER_MESSAGE],
        "category_recommendations": CategoryPicks(products),
        "campaign": {"name": campaign_name},
        "trigger": dict(trigger or {}),
        "links": {"unsubscribe": unsubscribe_url, "shop": settings.SHOP_URL},
        "shop": shop_data(),
    }


def sample_context() -> dict:
    """Return a context with every documented field filled, for linting and previews without a customer."""
    customer = customer_data(
        {
            "external_id": "SAMPLE-1",
            "email": "sample.customer@example.com",
            "first_name": "Alex",
            "last_name": "Sample",
            "locale": "en-GB",
            "timezone": "Europe/London",
            "country": "GB",
            "city": "London",
            "birth_date": date(1990, 5, 17),
            "attributes": {"loyalty_tier": "gold"},
        }
    )
    products = [
        {
            "sku": f"SAMPLE-{number}",
            "name": f"Sample product {number}",
            "url": f"{settings.SHOP_URL}/products/sample-{number}",
            "image_url": f"{settings.SHOP_URL}/images/sample-{number}.jpg",
            "price": Decimal("19.90") + number,
            "currency": "EUR",
            "category": "Samples",
        }
        for number in range(1, 5)
    ]
    return build_context(
        customer,
        recommendations=products,
        campaign_name="Sample campaign",
        unsubscribe_url=f"{settings.PUBLIC_BASE_URL}/u/sample/",
        message={
            "subject": "Where is my order?",
            "excerpt": "Hello, my order SAMPLE-1001 has not arrived yet.",
            "received_at": "2026-03-02T10:00:00+00:00",
            "received_on": "2026-03-02",
            "language": "en",
            "intent": "order_status",
            "order_reference": "",
        },
        order={
            "named": True,
            "external_id": "SAMPLE-1001",
            "status": "pending",
            "status_label": "Pending",
            "placed_at": "2026-02-27T15:30:00+00:00",
            "placed_on": "2026-02-27",
            "total": "39.80",
            "currency": "EUR",
        },
    )


def no_recommendations(customer_ids: list[int]) -> dict[int, list[dict]]:
    """The default recommendation source: nobody gets recommendations until a recommender is set."""
    return {}


def recommendation_source() -> RecommendationSource:
    """Return the function named by RECOMMENDATION_SOURCE: customer ids in, product dicts per id out."""
    return import_string(settings.RECOMMENDATION_SOURCE)
