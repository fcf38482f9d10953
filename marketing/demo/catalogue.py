"""The demo shop's catalogue: products by category, with prices, pages and popularity."""

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from random import Random

SHOP_URL = "https://shop.example.com"
CATALOGUE_SIZE = 200
OUT_OF_STOCK_SHARE = 0.06
POPULARITY_EXPONENT = 0.9  # Zipf-like: a category's best seller sells several times its median product
PRICE_SPREAD = 0.55  # sigma of the log-normal around a category's median price


@dataclass(frozen=True)
class Category:
    name: str
    sku_prefix: str
    share: float  # of the catalogue
    median_price: float
    min_price: float
    max_price: float
    bought_in_multiples: bool
    items: tuple[str, ...]
    variants: tuple[str, ...]
    pitches: tuple[str, ...]


COLOURS = ("Black", "Navy", "Sand", "Forest Green", "Stone Grey", "Rust", "Off-White", "Ocean Blue")
CATEGORIES = (
    Category(
        "apparel", "APP", 0.20, 35, 9, 180, False,
        ("T-Shirt", "Hoodie", "Jeans", "Rain Jacket", "Linen Shirt", "Wool Sweater", "Summer Dress", "Chinos"),
        COLOURS,
        ("Cut for everyday wear and soft from the first day.", "A wardrobe staple that keeps its shape wash after wash."),
    ),
    Category(
        "shoes", "SHO", 0.12, 85, 29, 240, False,
        ("Sneakers", "Running Shoes", "Leather Boots", "Sandals", "Loafers", "Hiking Boots"),
        COLOURS,
        ("Cushioned soles for long days on your feet.", "Built to be worn in, not worn out."),
    ),
    Category(
        "home", "HOM", 0.15, 30, 6, 350, False,
        ("Scented Candle", "Throw Blanket", "Ceramic Vase", "Cushion Cover", "Table Lamp", "Cast Iron Pan", "Towel Set"),
        COLOURS,
        ("Makes a room feel finished.", "Made to be used every day and kept for years."),
    ),
    Category(
        "beauty", "BEA", 0.12, 18, 4, 90, True,
        ("Face Serum", "Hand Cream", "Lip Balm", "Shampoo", "Body Lotion", "Eau de Parfum"),
        ("30 ml", "50 ml", "100 ml"),
        ("Gentle on sensitive skin, free of parabens.", "A small daily ritual that lasts for weeks."),
    ),
    Category(
        "electronics", "ELE", 0.10, 70, 12, 600, False,
        ("Wireless Earbuds", "Bluetooth Speaker", "Power Bank", "Smart Plug", "USB-C Charger", "Fitness Tracker"),
        ("Black", "White", "Graphite"),
        ("Pairs in seconds and charges over USB-C.", "Two years of warranty included."),
    ),
    Category(
        "outdoor", "OUT", 0.11, 55, 8, 400, False,
        ("Tent", "Sleeping Bag", "Water Bottle", "Trekking Poles", "Daypack", "Camping Stove"),
        COLOURS,
        ("Light enough to carry, tough enough for bad weather.", "Tested on long weekends in the hills."),
    ),
    Category(
        "kids", "KID", 0.10, 22, 5, 120, True,
        ("Wooden Puzzle", "Plush Bear", "Building Blocks", "Kids' Raincoat", "Picture Book Set"),
        ("Ages 3+", "Ages 6+", "Ages 8+"),
        ("Safe materials, tested to EN 71.", "Made for small hands and big imaginations."),
    ),
    Category(
        "books", "BOO", 0.10, 16, 6, 60, True,
        ("Cookbook", "Novel", "Travel Guide", "Dotted Notebook", "Art Book"),
        ("Hardcover", "Paperback"),
        ("A favourite of our team this season.", "Printed on FSC-certified paper."),
    ),
)
STYLES = ("Classic", "Essential", "Everyday", "Premium", "Organic", "Vintage", "Lightweight", "Urban", "Nordic", "Coastal")
CLOSINGS = ("Free returns within 30 days.", "Ships within two working days.", "Carbon-neutral delivery.")


@dataclass(frozen=True)
class ProductSpec:
    sku: str
    name: str
    category: str
    price: Decimal
    url: str
    image_url: str
    description: str
    in_stock: bool


@dataclass(frozen=True)
class Catalogue:
    products: tuple[ProductSpec, ...]
    shelves: tuple[tuple[int, ...], ...]  # product indexes per CATEGORIES entry, best seller first
    shelf_weights: tuple[tuple[float, ...], ...]  # cumulative popularity along each shelf

    def pick(self, rng: Random, category: int) -> int:
        """Return a product of the category, popular ones more often."""
        return rng.choices(self.shelves[category], cum_weights=self.shelf_weights[category])[0]

    def tag(self, product: int) -> dict[str, str]:
        """Return the event properties that name the product."""
        spec = self.products[product]
        return {"sku": spec.sku, "category": spec.category}


def draw_price(rng: Random, category: Category) -> Decimal:
    """Return a shelf price for the category: log-normal around its median, ending in .99 or .95."""
    raw = category.median_price * math.exp(rng.gauss(0, PRICE_SPREAD))
    euros = int(min(max(raw, category.min_price), category.max_price))
    return Decimal(euros) + Decimal(rng.choice(("0.99", "0.95", "0.99", "0.00")))


def slugify_name(name: str) -> str:
    """Return the name as a lower-case URL slug."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def build_catalogue(rng: Random, size: int = CATALOGUE_SIZE) -> Catalogue:
    """Return `size` products spread over CATEGORIES, each shelf ordered by popularity."""
    products: list[ProductSpec] = []
    shelves: list[tuple[int, ...]] = []
    weights: list[tuple[float, ...]] = []
    editions: dict[str, int] = {}  # a shop names each product once: a repeated draw becomes a new edition
    for category in CATEGORIES:
        count = max(1, round(size * category.share))
        shelf = []
        for number in range(1, count + 1):
            name = f"{rng.choice(STYLES)} {rng.choice(category.items)} – {rng.choice(category.variants)}"
            editions[name] = editions.get(name, 0) + 1
            if editions[name] > 1:
                name = f"{name}, edition {editions[name]}"
            sku = f"{category.sku_prefix}-{number:04d}"
            shelf.append(len(products))
            products.append(
                ProductSpec(
                    sku=sku,
                    name=name,
                    category=category.name,
                    price=draw_price(rng, category),
                    url=f"{SHOP_URL}/products/{slugify_name(name)}-{sku.lower()}",
                    image_url=f"{SHOP_URL}/images/{sku.lower()}.jpg",
                    description=f"{name}. {rng.choice(category.pitches)} {rng.choice(CLOSINGS)}",
                    in_stock=rng.random() >= OUT_OF_STOCK_SHARE,
                )
            )
        rng.shuffle(shelf)
        shelves.append(tuple(shelf))
        cumulative, total = [], 0.0
        for rank in range(1, len(shelf) + 1):
            total += rank**-POPULARITY_EXPONENT
            cumulative.append(total)
        weights.append(tuple(cumulative))
    return Catalogue(products=tuple(products), shelves=tuple(shelves), shelf_weights=tuple(weights))
