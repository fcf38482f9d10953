"""What content is generated for: products and categories, all of them or a segment's favourites, as plain data."""

import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, DecimalField, Exists, ExpressionWrapper, F, Min, OuterRef, QuerySet, Sum
from django.utils.text import slugify

from campaigns.content.templates import one_line
from marketing.models import OrderLine, OrderStatus, Product, Segment, SegmentMembership

# How many categories or products a segment's content covers: the ones its members spent most on.
SEGMENT_TOP_SUBJECTS = 10
# Products named in a category's copy and JSON-LD item list.
CATEGORY_LISTED_PRODUCTS = 10
# Products read per query when generating for the whole catalogue.
PRODUCT_BATCH_SIZE = 500
# Products carry their own URL; categories do not, so their page address follows the shop's pattern.
CATEGORY_URL_PATTERN = "{shop_url}/categories/{slug}"
# Longer words of a product's name become hashtags; shorter ones are mostly "and", "for", "XL".
HASHTAG_MIN_WORD_CHARS = 4

_WORD = re.compile(r"\w+")
_REVENUE = Sum(
    ExpressionWrapper(F("quantity") * F("unit_price"), output_field=DecimalField(max_digits=16, decimal_places=2))
)


@dataclass(frozen=True)
class Subject:
    """A product or a category, with the plain-data context its templates render."""

    kind: str  # "product" or "category": the template names' middle part
    key: str  # "product:<sku>" or "category:<name>"
    context: dict
    product_id: int | None = None
    category: str = ""


def hashtags_for(category: str, name: str = "") -> list[str]:
    """Return hashtags for a subject: its category as one tag, then the longer words of its name."""
    tags = []
    if words := _WORD.findall(category):
        tags.append("#" + "".join(word[:1].upper() + word[1:] for word in words))
    for word in _WORD.findall(name):
        if len(word) >= HASHTAG_MIN_WORD_CHARS and not word.isdigit():
            tags.append("#" + word[:1].upper() + word[1:])
    return list(dict.fromkeys(tags))


def category_url(name: str) -> str:
    """Return the address of a category's page in the shop."""
    return CATEGORY_URL_PATTERN.format(shop_url=settings.SHOP_URL.rstrip("/"), slug=slugify(name))


def _shop() -> dict:
    return {"name": settings.SHOP_NAME, "url": settings.SHOP_URL}


def _audience(segment: Segment | None) -> dict | None:
    return {"name": segment.name} if segment is not None else None


def product_data(product: Product) -> dict:
    """Return a product as the plain data templates and structured data read."""
    return {
        "sku": product.sku,
        "name": one_line(product.name),
        "category": product.category,
        "description": one_line(product.description),
        "price": f"{product.price:.2f}",
        "currency": product.currency,
        "url": product.url,
        "image": product.image_url,
        "in_stock": product.in_stock,
    }


def product_subject(product: Product, segment: Segment | None = None) -> Subject:
    """Return a product as a subject, its copy aimed at the segment when there is one."""
    context = {
        "shop": _shop(),
        "audience": _audience(segment),
        "product": product_data(product),
        "hashtags": hashtags_for(product.category, product.name),
    }
    return Subject("product", f"product:{product.sku}", context, product_id=product.pk)


def category_subject(name: str, segment: Segment | None = None) -> Subject:
    """Return a category as a subject: its page, price range and first products in stock."""
    products = Product.objects.filter(category=name)
    totals = products.aggregate(count=Count("pk"), min_price=Min("price"))
    listed = [
        product_data(product) for product in products.order_by("-in_stock", "name", "sku")[:CATEGORY_LISTED_PRODUCTS]
    ]
    cheapest = products.order_by("price", "sku").first()
    context = {
        "shop": _shop(),
        "audience": _audience(segment),
        "category": {
            "name": name,
            "url": category_url(name),
            "image": next((product["image"] for product in listed if product["image"]), ""),
            "product_count": totals["count"],
            "min_price": f"{totals['min_price']:.2f}" if totals["min_price"] is not None else "",
            "currency": cheapest.currency if cheapest is not None else "",
            "products": listed,
        },
        "hashtags": hashtags_for(name),
    }
    return Subject("category", f"category:{name}", context, category=name)


def _segment_lines(segment: Segment) -> QuerySet:
    """Order lines of completed orders placed by the segment's current members."""
    members = SegmentMembership.objects.filter(segment=segment, customer_id=OuterRef("order__customer_id"))
    return OrderLine.objects.filter(Exists(members), order__status=OrderStatus.COMPLETED)


def top_categories(segment: Segment, top: int = SEGMENT_TOP_SUBJECTS) -> list[str]:
    """Return the categories the segment's members spent most on, most first (then most lines, then by name)."""
    rows = (
        _segment_lines(segment)
        .exclude(product__category="")
        .values("product__category")
        .annotate(revenue=_REVENUE, lines=Count("pk"))
        .order_by("-revenue", "-lines", "product__category")[:top]
    )
    return [row["product__category"] for row in rows]


def top_products(segment: Segment, top: int = SEGMENT_TOP_SUBJECTS) -> list[int]:
    """Return the ids of the products the segment's members spent most on, most first (then most lines, then by SKU)."""
    rows = (
        _segment_lines(segment)
        .values("product_id")
        .annotate(revenue=_REVENUE, lines=Count("pk"))
        .order_by("-revenue", "-lines", "product__sku")[:top]
    )
    return [row["product_id"] for row in rows]


def _catalogue() -> Iterator[Product]:
    # Keyset batches: the caller writes between batches, so no cursor stays open across its transactions.
    last_id = 0
    while batch := list(Product.objects.filter(pk__gt=last_id).order_by("pk")[:PRODUCT_BATCH_SIZE]):
        yield from batch
        last_id = batch[-1].pk


def product_subjects(segment: Segment | None = None, top: int = SEGMENT_TOP_SUBJECTS) -> Iterator[Subject]:
    """Yield every product, or the segment's top products in order."""
    if segment is None:
        products: Iterator[Product] = _catalogue()
    else:
        ids = top_products(segment, top)
        found = Product.objects.in_bulk(ids)
        products = iter([found[pk] for pk in ids])
    for product in products:
        yield product_subject(product, segment)


def category_subjects(segment: Segment | None = None, top: int = SEGMENT_TOP_SUBJECTS) -> Iterator[Subject]:
    """Yield every category by name, or the segment's top categories in order."""
    if segment is None:
        names = list(
            Product.objects.exclude(category="").order_by("category").values_list("category", flat=True).distinct()
        )
    else:
        names = top_categories(segment, top)
    for name in names:
        yield category_subject(name, segment)
