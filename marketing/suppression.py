"""Keyed hashes of e-mail addresses, the only form in which the suppression list keeps them."""

import hashlib
import hmac
import unicodedata

from django.conf import settings


def normalize_email(email: str) -> str:
    """Return the address as Kairos compares it: NFKC, trimmed, lower-cased."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def email_hash(email: str) -> str:
    """Return the hex HMAC-SHA256 of the normalised address under SUPPRESSION_HMAC_KEY."""
    key = settings.SUPPRESSION_HMAC_KEY.encode()
    return hmac.new(key, normalize_email(email).encode(), hashlib.sha256).hexdigest()
