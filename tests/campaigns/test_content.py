"""SEO metadata and social posts: structured data, platform limits, refusals, locales, segments, reruns, the command and task."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from campaigns.content import generate_all_content, generate_content
from campaigns.content.social import POST_MAX_CHARS, post_length, x_length
from campaigns.content.subjects import top_categories
from campaigns.models import Channel, ContentPiece, ContentStatus
from campaigns.rendering import environment
from campaigns.tasks import generate_content_task
from marketing.celery import app as celery_app
from marketing.models import OrderStatus, Segment, SegmentKind, SegmentMembership
from marketing.queues import Queue
from tests.factories import CustomerFactory, OrderFactory, OrderLineFactory, ProductFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
HOSTILE_NAME = '</script><script>alert(1)</script>"><img src=x onerror=alert(1)>'


@pytest.fixture(autouse=True)
def shop(settings):
    settings.SHOP_NAME = "Kairos Demo Shop"
    settings.SHOP_URL = "https://shop.example.com"


@pytest.fixture
def extra_template(tmp_path, monkeypatch):
    """Return a function that adds a template only this test can load (use a locale no shipped template has)."""
    loader = environment().loader
    monkeypatch.setattr(loader, "searchpath", [str(tmp_path), *loader.searchpath])

    def add(name: str, source: str) -> None:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)

    yield add
    environment().cache.clear()


def piece(channel: str, subject_key: str, locale: str = "", scope_key: str = "") -> ContentPiece:
    return ContentPiece.objects.get(channel=channel, subject_key=subject_key, locale=locale, scope_key=scope_key)


class HeadParser(HTMLParser):
    """Record the tags and the script text a browser would see in generated head markup."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.script = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        self._in_script = tag == "script"

    def handle_endtag(self, tag) -> None:
        self._in_script = False

    def handle_data(self, data) -> None:
        if self._in_script:
            self.script += data


def parsed_head(html: str) -> HeadParser:
    parser = HeadParser()
    parser.feed(html)
    parser.close()
    return parser


def test_product_json_ld_parses_and_carries_the_product_and_its_offer():
    ProductFactory(
        sku="SHOE-1",
        name="Trail Runner",
        category="shoes",
        price=Decimal("129.90"),
        url="https://shop.example.com/products/shoe-1",
        image_url="https://shop.example.com/images/shoe-1.jpg",
        description="Light and\nwaterproof.",
    )

    report = generate_content("products", channels=["meta"], now=NOW)

    meta = piece("meta", "product:SHOE-1")
    script = parsed_head(meta.data["head_html"]).script
    assert (report.created, report.refused, meta.status) == (1, 0, ContentStatus.DRAFT)
    assert (
        json.loads(script)
        == meta.data["json_ld"]
        == {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": "Trail Runner",
            "description": "Light and waterproof.",
            "sku": "SHOE-1",
            "image": "https://shop.example.com/images/shoe-1.jpg",
            "category": "shoes",
            "url": "https://shop.example.com/products/shoe-1",
            "offers": {
                "@type": "Offer",
                "price": "129.90",
                "priceCurrency": "EUR",
                "availability": "https://schema.org/InStock",
                "url": "https://shop.example.com/products/shoe-1",
            },
        }
    )
    assert meta.body == meta.data["description"] == "Light and waterproof."
    assert meta.data["title"] == "Trail Runner | Kairos Demo Shop"
    assert meta.data["open_graph"] == {
        "og:type": "product",
        "og:title": "Trail Runner | Kairos Demo Shop",
        "og:description": "Light and waterproof.",
        "og:url": "https://shop.example.com/products/shoe-1",
        "og:image": "https://shop.example.com/images/shoe-1.jpg",
        "og:site_name": "Kairos Demo Shop",
        "product:price:amount": "129.90",
        "product:price:currency": "EUR",
    }
    assert meta.data["head_html"].splitlines()[:3] == [
        "<title>Trail Runner | Kairos Demo Shop</title>",
        '<meta name="description" content="Light and waterproof.">',
        '<meta property="og:type" content="product">',
    ]


def test_a_product_out_of_stock_is_offered_as_out_of_stock_and_without_image_or_description():
    ProductFactory(sku="GONE", name="Sold Out Boot", price=Decimal("59.00"), in_stock=False, url="")

    generate_content("products", channels=["meta"], now=NOW)

    data = piece("meta", "product:GONE").data
    assert data["json_ld"]["offers"] == {
        "@type": "Offer",
        "price": "59.00",
        "priceCurrency": "EUR",
        "availability": "https://schema.org/OutOfStock",
    }
    assert data["json_ld"]["description"] == "Sold Out Boot for 59.00 EUR at Kairos Demo Shop."
    assert "image" not in data["json_ld"]
    assert sorted(data["open_graph"]) == [
        "og:description", "og:site_name", "og:title", "og:type", "product:price:amount", "product:price:currency",
    ]  # fmt: skip


def test_a_very_long_name_and_description_are_shortened_at_a_word_to_fit_the_meta_limits():
    ProductFactory(sku="LONG", name=" ".join(["Ultralight"] * 20), description=" ".join(["waterproof"] * 100))

    generate_content("products", channels=["meta"], now=NOW)

    meta = piece("meta", "product:LONG")
    assert meta.status == ContentStatus.DRAFT
    assert meta.data["title"] == "Ultralight Ultralight Ultralight… | Kairos Demo Shop"
    assert len(meta.data["title"]) == 52
    assert meta.data["description"] == " ".join(["waterproof"] * 14) + "…"
    assert len(meta.data["description"]) == 154
    assert meta.data["json_ld"]["name"] == " ".join(["Ultralight"] * 20)


def test_a_title_still_too_long_after_its_template_is_refused_with_the_reason(extra_template):
    extra_template("seo/product_title.zz.txt", "{{ product.name }}")
    ProductFactory(sku="LONG", name="x" * 72)

    report = generate_content("products", locale="zz", channels=["meta"], now=NOW)

    meta = piece("meta", "product:LONG", locale="zz")
    assert (report.created, report.refused) == (0, 1)
    assert (meta.status, meta.problem) == (
        ContentStatus.REFUSED,
        "A meta title allows 60 characters; this title has 72",
    )
    assert [str(refusal) for refusal in report.refusals] == [
        "product:LONG on Search and Open Graph: A meta title allows 60 characters; this title has 72"
    ]


def test_category_metadata_is_a_collection_page_listing_its_products():
    ProductFactory(
        sku="B1", name="Atlas", category="maps", price=Decimal("12.00"), image_url="https://shop.example.com/b1.jpg"
    )
    ProductFactory(sku="B2", name="Globe", category="maps", price=Decimal("8.50"), url="")
    ProductFactory(sku="T1", name="Kite", category="toys")

    report = generate_content("categories", channels=["meta"], now=NOW)

    data = piece("meta", "category:maps").data
    assert report.created == 2
    assert data["title"] == "Maps | Kairos Demo Shop"
    assert data["description"] == "Shop 2 products in maps from 8.50 EUR at Kairos Demo Shop: Atlas, Globe."
    assert json.loads(parsed_head(data["head_html"]).script) == {
        "@context": "https://schema.org",
        "@type": "CollectionPage",
        "name": "maps",
        "description": "Shop 2 products in maps from 8.50 EUR at Kairos Demo Shop: Atlas, Globe.",
        "url": "https://shop.example.com/categories/maps",
        "mainEntity": {
            "@type": "ItemList",
            "numberOfItems": 2,
            "itemListElement": [
                {"@type": "ListItem", "position": 1, "name": "Atlas", "url": "https://shop.example.com/products/B1"},
                {"@type": "ListItem", "position": 2, "name": "Globe"},
            ],
        },
    }
    assert data["open_graph"]["og:type"] == "website"
    assert data["open_graph"]["og:url"] == "https://shop.example.com/categories/maps"
    assert data["open_graph"]["og:image"] == "https://shop.example.com/b1.jpg"


def test_a_hostile_product_name_cannot_break_out_of_the_json_ld_script_or_the_meta_tags():
    ProductFactory(sku="EVIL", name=HOSTILE_NAME, description=HOSTILE_NAME, image_url='https://x.example/"><b>.jpg')

    generate_content("products", channels=["meta"], now=NOW)

    data = piece("meta", "product:EVIL").data
    head = parsed_head(data["head_html"])
    assert head.tags == ["title"] + ["meta"] * 9 + ["script"]
    assert data["head_html"].count("</script>") == 1
    assert data["head_html"].endswith("</script>")
    assert json.loads(head.script)["name"] == HOSTILE_NAME
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in head.script
    assert '<meta property="og:image" content="https://x.example/&#34;&gt;&lt;b&gt;.jpg">' in data["head_html"]


def test_every_social_post_is_stored_within_its_platform_limit():
    segment = Segment.objects.create(name="Weekend hikers", kind=SegmentKind.STATIC)
    long_name = " ".join(["Ultralight"] * 23)
    product = ProductFactory(sku="BIG", name=long_name, category="running shoes", description="waterproof " * 2000)
    for number in range(12):
        ProductFactory(sku=f"RS{number}", name=f"{long_name} {number}", category="running shoes")
    customer = CustomerFactory()
    SegmentMembership.objects.create(segment=segment, customer=customer, entered_at=NOW)
    OrderLineFactory(order=OrderFactory(customer=customer), product=product)

    report = generate_all_content(segment=segment, now=NOW)

    posts = ContentPiece.objects.exclude(channel=Channel.META)
    assert (report.created, report.refused) == (12, 0)
    assert sorted(posts.values_list("subject_key", "channel")) == sorted(
        (subject, channel) for subject in ("category:running shoes", "product:BIG") for channel in POST_MAX_CHARS
    )
    for post in posts:
        assert post.status == ContentStatus.DRAFT
        assert post.data["length"] == post_length(post.channel, post.body) <= POST_MAX_CHARS[post.channel]
        assert post.data["limit"] == POST_MAX_CHARS[post.channel]
        assert "Weekend hikers" in post.body or post.channel == Channel.WEIBO


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("a" * 280, 280),
        ("New boots https://shop.example.com/products/" + "x" * 200, 10 + 23),
        ("See http://a.example and https://b.example/long/path?q=1 now", 4 + 23 + 5 + 23 + 4),
        ("日本の靴", 8),
        ("Boots 👢", 8),
    ],
)
def test_x_counts_every_url_as_23_characters_and_wide_characters_as_two(text, length):
    assert x_length(text) == length


def test_x_post_counts_its_link_as_23_characters_however_long_it_is():
    ProductFactory(
        sku="P1", name="Ski", price=Decimal("10.00"), url="https://shop.example.com/" + "a" * 300, category=""
    )

    generate_content("products", channels=["x"], now=NOW)

    post = piece("x", "product:P1")
    assert post.body == "Ski, 10.00 EUR\nhttps://shop.example.com/" + "a" * 300
    assert (post.status, post.data["length"]) == (ContentStatus.DRAFT, 15 + 23)


def test_an_over_long_x_post_is_refused_with_the_platform_limit_and_its_length(extra_template):
    extra_template("social/x_product.zz.txt", "{{ product.name }} {{ product.name }}\n{{ product.url }}")
    ProductFactory(sku="P1", name="b" * 138)

    report = generate_content("products", locale="zz", now=NOW)

    post = piece("x", "product:P1", locale="zz")
    assert (report.created, report.refused) == (5, 1)
    assert (post.status, post.problem) == (ContentStatus.REFUSED, "X allows 280 characters; this post has 301")
    assert post.data == {"length": 301, "limit": 280, "hashtags": 0}
    assert post.template_name == "social/x_product.zz.txt"
    assert ContentPiece.objects.filter(status=ContentStatus.REFUSED).count() == 1


@pytest.mark.parametrize(
    ("tags", "status", "problem"),
    [(30, "draft", ""), (31, "refused", "Instagram allows 30 hashtags; this post has 31")],
)
def test_instagram_allows_at_most_30_hashtags(extra_template, tags, status, problem):
    extra_template(
        "social/instagram_product.zz.txt",
        "Boots {% for n in range(count) %}#tag{{ n }} {% endfor %}".replace("count", str(tags)),
    )
    ProductFactory(sku="P1")

    report = generate_content("products", locale="zz", channels=["instagram"], now=NOW)

    post = piece("instagram", "product:P1", locale="zz")
    assert (post.status, post.problem, post.data["hashtags"]) == (status, problem, tags)
    assert report.refused == (1 if problem else 0)


def test_a_template_error_is_refused_with_the_template_and_the_line(extra_template):
    extra_template("social/linkedin_product.zz.txt", "Line one\n{{ product.colour }}")
    ProductFactory(sku="P1")

    generate_content("products", locale="zz", channels=["linkedin"], now=NOW)

    post = piece("linkedin", "product:P1", locale="zz")
    assert post.status == ContentStatus.REFUSED
    assert (
        post.problem
        == "social/linkedin_product.zz.txt: line 2: unknown variable: 'dict object' has no attribute 'colour'"
    )
    assert post.body == ""


@pytest.mark.parametrize("locale", ["de", "de-AT"])
def test_a_locale_uses_its_own_templates_and_falls_back_to_the_default_ones(locale):
    ProductFactory(
        sku="WS", name="Wanderschuh", category="shoes", price=Decimal("89.90"), url="https://shop.example.com/ws"
    )

    generate_content("products", locale=locale, now=NOW)

    x, facebook, meta = (piece(channel, "product:WS", locale=locale) for channel in ("x", "facebook", "meta"))
    assert x.template_name == "social/x_product.de.txt"
    assert x.body == "Wanderschuh für 89,90 EUR\nhttps://shop.example.com/ws\n#Shoes #Wanderschuh"
    assert facebook.template_name == "social/facebook_product.txt"
    assert meta.template_name == "seo/product_title.txt, seo/product_description.de.txt"
    assert meta.body == "Wanderschuh für 89,90 EUR bei Kairos Demo Shop."
    assert ContentPiece.objects.filter(locale="").count() == 0


def segment_of(*customers) -> Segment:
    segment = Segment.objects.create(name="Loyal buyers", kind=SegmentKind.STATIC)
    SegmentMembership.objects.bulk_create(
        [SegmentMembership(segment=segment, customer=customer, entered_at=NOW) for customer in customers]
    )
    return segment


def bought(customer, product, quantity: int, status: str = OrderStatus.COMPLETED) -> None:
    OrderLineFactory(order=OrderFactory(customer=customer, status=status), product=product, quantity=quantity)


@pytest.fixture
def loyal_buyers() -> Segment:
    """Members spent 300 on shoes, 200 on toys, 100 on books; an outsider and a cancelled order spent more on books."""
    shoes, toys, books = (
        ProductFactory(sku=sku, name=name, category=category, price=Decimal("100.00"))
        for sku, name, category in (("S1", "Boot", "shoes"), ("T1", "Kite", "toys"), ("B1", "Atlas", "books"))
    )
    ann, bob, outsider = CustomerFactory(), CustomerFactory(), CustomerFactory()
    bought(ann, shoes, 2)
    bought(bob, shoes, 1)
    bought(bob, toys, 2)
    bought(ann, books, 1)
    bought(ann, books, 9, status=OrderStatus.CANCELLED)
    bought(outsider, books, 10)
    ProductFactory(sku="G1", name="Rake", category="garden")
    return segment_of(ann, bob)


def test_a_segment_aims_at_the_categories_its_members_spent_most_on(loyal_buyers):
    assert top_categories(loyal_buyers) == ["shoes", "toys", "books"]
    assert top_categories(loyal_buyers, top=2) == ["shoes", "toys"]


def test_content_for_a_segment_covers_its_top_categories_and_names_the_audience(loyal_buyers):
    report = generate_content("categories", segment=loyal_buyers, channels=["x"], top=2, now=NOW)

    scope = f"segment:{loyal_buyers.pk}"
    pieces = ContentPiece.objects.order_by("id")
    assert report.created == 2
    assert list(pieces.values_list("subject_key", "scope_key", "segment", "category")) == [
        ("category:shoes", scope, loyal_buyers.pk, "shoes"),
        ("category:toys", scope, loyal_buyers.pk, "toys"),
    ]
    assert pieces[0].body == (
        "Picked for Loyal buyers: Shoes at Kairos Demo Shop: 1 product from 100.00 EUR.\n"
        "https://shop.example.com/categories/shoes\n#Shoes"
    )


def test_content_for_a_segment_covers_its_top_products_in_order(loyal_buyers):
    generate_content("products", segment=loyal_buyers, channels=["meta"], now=NOW)

    assert list(ContentPiece.objects.order_by("id").values_list("subject_key", flat=True)) == [
        "product:S1", "product:T1", "product:B1",
    ]  # fmt: skip


def test_regenerating_unchanged_output_creates_and_updates_nothing_and_keeps_approval():
    product = ProductFactory(sku="P1", name="Boot")
    first = generate_content("products", now=NOW)
    ContentPiece.objects.filter(channel="x").update(status=ContentStatus.APPROVED, reviewed_at=NOW)

    second = generate_content("products", now=LATER)

    assert (first.created, first.updated, first.unchanged) == (6, 0, 0)
    assert (second.created, second.updated, second.unchanged, second.refused) == (0, 0, 6, 0)
    assert ContentPiece.objects.count() == 6
    x = piece("x", "product:P1")
    assert (x.status, x.reviewed_at, x.generated_at) == (ContentStatus.APPROVED, NOW, NOW)
    assert product.content.exclude(generated_at=NOW).count() == 0


def test_regenerating_changed_output_updates_in_place_and_sends_approved_pieces_back_to_review():
    product = ProductFactory(sku="P1", name="Boot")
    generate_content("products", now=NOW)
    ContentPiece.objects.update(status=ContentStatus.APPROVED, reviewed_at=NOW)
    ids = set(ContentPiece.objects.values_list("id", flat=True))
    product.name = "Winter Boot"
    product.save()

    report = generate_content("products", now=LATER)

    x = piece("x", "product:P1")
    assert (report.created, report.updated, report.unchanged) == (0, 6, 0)
    assert set(ContentPiece.objects.values_list("id", flat=True)) == ids
    assert (x.status, x.reviewed_at, x.generated_at) == (ContentStatus.DRAFT, None, LATER)
    assert x.body.startswith("Winter Boot, 19.90 EUR")


def test_an_unknown_channel_is_refused_before_anything_is_generated():
    ProductFactory()

    with pytest.raises(ValueError, match="unknown channel"):
        generate_content("products", channels=["x", "myspace"])

    assert ContentPiece.objects.count() == 0


def test_the_report_summary_is_one_line():
    ProductFactory(sku="P1", category="")

    report = generate_all_content(channels=["meta", "x"], now=NOW)

    assert report.summary() == "2 content pieces: 2 created, 0 updated, 0 unchanged, 0 refused"


def test_the_command_prints_what_it_created_and_refused(extra_template):
    extra_template("social/x_product.zz.txt", "{{ product.name }}{{ product.name }}")
    extra_template("seo/product_description.zz.txt", "{{ product.name }}{{ product.name }}")
    ProductFactory(sku="P1", name="c" * 150, category="")
    out = StringIO()

    call_command("generate_content", "--products", "--locale", "zz", "--channel", "x", "--channel", "meta", stdout=out)

    assert out.getvalue() == (
        "products: 2 content pieces: 0 created, 0 updated, 0 unchanged, 2 refused\n"
        "  refused product:P1 on Search and Open Graph: A meta description allows 155 characters; this description has 300\n"
        "  refused product:P1 on X: X allows 280 characters; this post has 300\n"
    )


def test_the_command_generates_both_kinds_for_a_named_segment(loyal_buyers):
    out = StringIO()

    call_command("generate_content", "--segment", "Loyal buyers", "--channel", "x", stdout=out)

    assert out.getvalue() == (
        "products aimed at 'Loyal buyers': 3 content pieces: 3 created, 0 updated, 0 unchanged, 0 refused\n"
        "categories aimed at 'Loyal buyers': 3 content pieces: 3 created, 0 updated, 0 unchanged, 0 refused\n"
    )
    assert ContentPiece.objects.filter(segment=loyal_buyers).count() == 6


def test_the_command_names_the_segments_when_one_is_unknown(loyal_buyers):
    with pytest.raises(CommandError, match="no segment named 'VIP'; segments: Loyal buyers"):
        call_command("generate_content", "--segment", "VIP", stdout=StringIO())

    assert ContentPiece.objects.count() == 0


def test_the_task_has_its_explicit_name_and_the_default_queue():
    assert generate_content_task.name == "campaigns.generate_content"
    assert celery_app.amqp.router.route({}, "campaigns.generate_content")["queue"].name == Queue.DEFAULT == "default"


def test_the_task_generates_for_a_segment_by_id_and_skips_a_deleted_one(loyal_buyers):
    generate_content_task("categories", segment_id=loyal_buyers.pk, channels=["meta"])
    generate_content_task("categories", segment_id=loyal_buyers.pk + 1000, channels=["meta"])

    assert sorted(ContentPiece.objects.values_list("subject_key", flat=True)) == [
        "category:books", "category:shoes", "category:toys",
    ]  # fmt: skip


def test_a_refused_piece_is_reported_again_on_every_run_and_never_duplicated(extra_template):
    extra_template("social/x_product.zz.txt", "{{ product.name }}{{ product.name }}")
    ProductFactory(sku="P1", name="d" * 150)
    generate_content("products", locale="zz", channels=["x"], now=NOW)

    again = generate_content("products", locale="zz", channels=["x"], now=LATER)

    post = piece("x", "product:P1", locale="zz")
    assert (again.created, again.updated, again.unchanged, again.refused) == (0, 0, 0, 1)
    assert (post.status, post.generated_at) == (ContentStatus.REFUSED, NOW)
    assert ContentPiece.objects.count() == 1
