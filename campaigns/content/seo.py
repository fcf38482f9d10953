"""Search and sharing metadata: the meta title and description, Open Graph tags, JSON-LD, and the `<head>` markup.

Only the title and description come from templates (`templates/seo/`). The structure is built here,
as data, so that no template can produce invalid JSON or markup that escapes its attribute or script.
"""

import json
from collections.abc import Collection

from campaigns.content.subjects import Subject
from campaigns.content.templates import PieceOutput, one_line, render_text
from campaigns.rendering import escape

# What search engines show before cutting off with an ellipsis.
META_TITLE_MAX_CHARS = 60
META_DESCRIPTION_MAX_CHARS = 155
SCHEMA_ORG = "https://schema.org"
# Inside <script>, "</script>" or "<!--" in a product name would end the script; JSON's \u escapes
# mean the same characters to a JSON parser and nothing to the HTML one.
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def product_json_ld(product: dict, description: str) -> dict:
    """Return schema.org `Product` data with its `Offer`; the meta description stands in for a missing description."""
    offer = {
        "@type": "Offer",
        "price": product["price"],
        "priceCurrency": product["currency"],
        "availability": f"{SCHEMA_ORG}/{'InStock' if product['in_stock'] else 'OutOfStock'}",
    }
    data = {
        "@context": SCHEMA_ORG,
        "@type": "Product",
        "name": product["name"],
        "description": product["description"] or description,
        "sku": product["sku"],
    }
    if product["image"]:
        data["image"] = product["image"]
    if product["category"]:
        data["category"] = product["category"]
    if product["url"]:
        data["url"] = offer["url"] = product["url"]
    data["offers"] = offer
    return data


def category_json_ld(category: dict, description: str) -> dict:
    """Return schema.org `CollectionPage` data whose main entity lists the category's first products."""
    items = [
        {"@type": "ListItem", "position": position, "name": product["name"]}
        | ({"url": product["url"]} if product["url"] else {})
        for position, product in enumerate(category["products"], start=1)
    ]
    return {
        "@context": SCHEMA_ORG,
        "@type": "CollectionPage",
        "name": category["name"],
        "description": description,
        "url": category["url"],
        "mainEntity": {"@type": "ItemList", "numberOfItems": category["product_count"], "itemListElement": items},
    }


def open_graph(subject: Subject, title: str, description: str) -> dict:
    """Return the Open Graph properties of a product or category page; empty ones are left out."""
    if subject.kind == "product":
        product = subject.context["product"]
        tags = {
            "og:type": "product",
            "og:title": title,
            "og:description": description,
            "og:url": product["url"],
            "og:image": product["image"],
            "og:site_name": subject.context["shop"]["name"],
            "product:price:amount": product["price"],
            "product:price:currency": product["currency"],
        }
    else:
        category = subject.context["category"]
        tags = {
            "og:type": "website",
            "og:title": title,
            "og:description": description,
            "og:url": category["url"],
            "og:image": category["image"],
            "og:site_name": subject.context["shop"]["name"],
        }
    return {name: value for name, value in tags.items() if value}


def script_json(data: dict) -> str:
    """Serialise JSON for a `<script type="application/ld+json">` element, so that no value can close the element."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_SCRIPT_ESCAPES)


def head_html(title: str, description: str, tags: dict, json_ld: dict) -> str:
    """Return the `<head>` markup: title, description, Open Graph tags and JSON-LD, every value escaped."""
    lines = [f"<title>{escape(title)}</title>", f'<meta name="description" content="{escape(description)}">']
    lines += [f'<meta property="{escape(name)}" content="{escape(value)}">' for name, value in tags.items()]
    lines.append(f'<script type="application/ld+json">{script_json(json_ld)}</script>')
    return "\n".join(lines)


def length_problem(what: str, text: str, limit: int) -> str:
    """Return why a title or description is refused, or "" when it fits."""
    if not text:
        return f"The {what} is empty"
    if len(text) > limit:
        return f"A {what} allows {limit:,} characters; this {what.split()[-1]} has {len(text):,}"
    return ""


def render_meta(subject: Subject, locale: str, available: Collection[str]) -> PieceOutput:
    """Render a subject's title and description and build the metadata around them; refuse either when it does not fit."""
    title = render_text(f"seo/{subject.kind}_title", locale, subject.context, available)
    description = render_text(f"seo/{subject.kind}_description", locale, subject.context, available)
    title_text, description_text = one_line(title.text), one_line(description.text)
    problem = (
        title.problem
        or description.problem
        or length_problem("meta title", title_text, META_TITLE_MAX_CHARS)
        or length_problem("meta description", description_text, META_DESCRIPTION_MAX_CHARS)
    )
    template_names = f"{title.template_name}, {description.template_name}"
    if title.problem or description.problem:
        return PieceOutput(description_text, {}, template_names, problem)
    if subject.kind == "product":
        json_ld = product_json_ld(subject.context["product"], description_text)
    else:
        json_ld = category_json_ld(subject.context["category"], description_text)
    tags = open_graph(subject, title_text, description_text)
    data = {
        "title": title_text,
        "description": description_text,
        "open_graph": tags,
        "json_ld": json_ld,
        "head_html": head_html(title_text, description_text, tags, json_ld),
    }
    return PieceOutput(description_text, data, template_names, problem)
