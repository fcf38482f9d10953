"""Social posts: rendered from `templates/social/`, then measured the way each platform measures them."""

import re
from collections.abc import Collection

from campaigns.content.subjects import Subject
from campaigns.content.templates import PieceOutput, render_text, tidy_post
from campaigns.models import Channel

# Each platform's published limit on a post, in characters as the platform counts them.
POST_MAX_CHARS = {
    Channel.X: 280,
    Channel.FACEBOOK: 63_206,
    Channel.INSTAGRAM: 2_200,
    Channel.LINKEDIN: 3_000,
    Channel.WEIBO: 2_000,
}
INSTAGRAM_MAX_HASHTAGS = 30
# X wraps every link in t.co, so a URL counts as this many characters whatever its length.
X_URL_CHARS = 23
# X counts code points in these ranges (Latin, Greek, Cyrillic, general punctuation) as one
# character and every other one (CJK, emoji) as two: the ranges of twitter-text's v3 configuration.
X_SINGLE_WEIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))

_URL = re.compile(r"https?://\S+")
_HASHTAG = re.compile(r"(?<![\w&#])#\w+")


def x_length(text: str) -> int:
    """Return a post's length as X counts it: each URL as 23, CJK characters and emoji as 2, others as 1."""
    length = 0
    position = 0
    for url in _URL.finditer(text):
        length += _x_weight(text[position : url.start()]) + X_URL_CHARS
        position = url.end()
    return length + _x_weight(text[position:])


def _x_weight(text: str) -> int:
    return sum(1 if any(low <= ord(char) <= high for low, high in X_SINGLE_WEIGHT_RANGES) else 2 for char in text)


def hashtag_count(text: str) -> int:
    """Return how many hashtags a post holds."""
    return len(_HASHTAG.findall(text))


def post_length(channel: str, text: str) -> int:
    """Return a post's length as its platform counts it."""
    return x_length(text) if channel == Channel.X else len(text)


def post_problem(channel: str, text: str) -> str:
    """Return why the platform would not accept the post, or "" when it would."""
    label = Channel(channel).label
    if not text:
        return f"The {label} template rendered an empty post"
    limit, length = POST_MAX_CHARS[channel], post_length(channel, text)
    if length > limit:
        return f"{label} allows {limit:,} characters; this post has {length:,}"
    if channel == Channel.INSTAGRAM and (tags := hashtag_count(text)) > INSTAGRAM_MAX_HASHTAGS:
        return f"{label} allows {INSTAGRAM_MAX_HASHTAGS} hashtags; this post has {tags}"
    return ""


def render_post(channel: str, subject: Subject, locale: str, available: Collection[str]) -> PieceOutput:
    """Render a subject's post for one platform and measure it; an over-long post is refused, never cut."""
    rendered = render_text(f"social/{channel}_{subject.kind}", locale, subject.context, available)
    text = tidy_post(rendered.text)
    data = {"length": post_length(channel, text), "limit": POST_MAX_CHARS[channel], "hashtags": hashtag_count(text)}
    return PieceOutput(text, data, rendered.template_name, rendered.problem or post_problem(channel, text))
