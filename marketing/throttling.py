"""Rate limits for the events API: per key, per address, and on wrong keys per address.

Counters live in Django's cache in fixed one-minute windows. With several web processes, point
CACHE_URL at Redis so they share one count; the default local-memory cache counts per process.
Admin logins are limited by django-axes (settings AXES_*), with the same view of client addresses.
"""

import time
from dataclasses import dataclass

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

WINDOW_S = 60


@dataclass(frozen=True)
class Throttled:
    """A limit that was reached: what it limits and when the window ends."""

    what: str
    limit: int
    retry_after_s: int


def client_address(request: HttpRequest) -> str:
    """Return the client's address, read through the trusted proxy when BEHIND_TLS_PROXY is set."""
    return get_client_ip_address(request) or request.META.get("REMOTE_ADDR", "") or "unknown"


def _hit(name: str, limit: int, now: float, *, count: bool = True) -> Throttled | None:
    window = int(now // WINDOW_S)
    key = f"kairos:throttle:{name}:{window}"
    if count:
        cache.add(key, 0, timeout=WINDOW_S * 2)
        try:
            used = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=WINDOW_S * 2)
            used = 1
    else:
        # Looking, not counting: the limit is reached once `limit` were counted.
        used = cache.get(key, 0) + 1
    if used > limit:
        return Throttled(name.split(":", 1)[0], limit, WINDOW_S - int(now % WINDOW_S))
    return None


def check_address(request: HttpRequest, now: float | None = None) -> Throttled | None:
    """Count a request from this address; refuse past API_RATE_PER_ADDRESS_PER_MINUTE, or once it sent too many wrong keys."""
    now = time.time() if now is None else now
    address = client_address(request)
    return _hit(f"failed-keys:{address}", settings.API_FAILED_KEYS_PER_ADDRESS_PER_MINUTE, now, count=False) or _hit(
        f"address:{address}", settings.API_RATE_PER_ADDRESS_PER_MINUTE, now
    )


def record_failed_key(request: HttpRequest, now: float | None = None) -> None:
    """Count a missing or wrong key from this address."""
    _hit(f"failed-keys:{client_address(request)}", settings.API_FAILED_KEYS_PER_ADDRESS_PER_MINUTE, time.time() if now is None else now)


def check_key(api_key_id: int, now: float | None = None) -> Throttled | None:
    """Count a request with this key; refuse past API_RATE_PER_KEY_PER_MINUTE."""
    return _hit(f"key:{api_key_id}", settings.API_RATE_PER_KEY_PER_MINUTE, time.time() if now is None else now)
