"""The built-in segment rule types, one module each; importing this package registers them."""

from marketing.segments.rule_types import attribute, bought, consent, event, purchase, segment  # noqa: F401
