"""SEO metadata and social posts for products and categories, generated from templates and stored for review.

Every product or category gets one `ContentPiece` per channel: "meta" (title, description, Open
Graph tags and JSON-LD, with the `<head>` markup built from them) and a post per social platform.
Copy comes from the sandboxed templates under `templates/seo/` and `templates/social/`, chosen per
locale; output past a platform's limit is stored as refused, with the reason, never cut blindly.

- `subjects`: which products and categories, as plain template context; a segment's favourites.
- `templates`: choosing a locale's template and rendering it.
- `seo`: titles, descriptions, Open Graph, JSON-LD and the head markup.
- `social`: posts, measured as each platform measures them.
- `generation`: the bulk run that stores pieces and reports what it did.
- `export`: CSV and JSON for reviewed pieces.
"""

from campaigns.content.generation import GenerationReport, Kind, generate_all_content, generate_content

__all__ = ["GenerationReport", "Kind", "generate_all_content", "generate_content"]
