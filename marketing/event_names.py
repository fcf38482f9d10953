"""The one rule for event names, for everything that names an event: the events API, the importers,
campaign triggers, branch steps and segment rules.

An event name is snake_case and says what happened, in the past tense: `cart_added`, `logged_in`,
`product_viewed`. A name that breaks the rule is refused where it is written, with the reason. A
trigger, step or rule that names an event never received is saved with a warning naming the
nearest names received, so "cart_add" is caught before a campaign waits for an event that never comes.
"""

import difflib
import re

from django.db import connection

EVENT_NAME_MAX_CHARS = 64
SUGGESTIONS = 3

_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# Trailing words that complete a phrasal verb: logged_in, signed_up, opted_out.
_PARTICLES = frozenset({"in", "out", "up", "down", "off", "on", "over", "back", "away"})
_IRREGULAR_PAST = frozenset(
    {
        "began", "begun", "bought", "built", "came", "chose", "chosen", "cut", "did", "done", "drew",
        "drawn", "found", "gave", "given", "got", "gotten", "held", "hid", "hidden", "kept", "knew",
        "known", "led", "left", "lost", "made", "met", "paid", "put", "quit", "ran", "read", "reset",
        "said", "saw", "seen", "sent", "set", "shown", "shut", "sold", "spent", "split", "stood",
        "taken", "thought", "told", "took", "undone", "won", "wrote", "written",
    }
)  # fmt: skip


class EventNameError(ValueError):
    """A name that is not an event name; the message says why and gives an example."""


def check_event_name(value: object) -> str:
    """Return the name if it follows the rule, else raise EventNameError saying what is wrong."""
    if not isinstance(value, str):
        raise EventNameError(f"must be text, not {type(value).__name__}")
    if not value:
        raise EventNameError("is empty; name what happened, e.g. cart_added")
    if len(value) > EVENT_NAME_MAX_CHARS:
        raise EventNameError(f"is longer than {EVENT_NAME_MAX_CHARS} characters")
    if not _SNAKE_CASE.fullmatch(value):
        suggestion = "_".join(re.findall(r"[a-z0-9]+", value.lower()))
        hint = f"; did you mean {suggestion!r}?" if _follows_rule(suggestion) else ""
        raise EventNameError(
            f"{value!r} is not snake_case (lower-case letters, digits and single underscores, e.g. cart_added){hint}"
        )
    words = value.split("_")
    while len(words) > 1 and words[-1] in _PARTICLES:
        words.pop()
    verb = words[-1]
    if not (verb.endswith("ed") or verb in _IRREGULAR_PAST):
        raise EventNameError(
            f"{value!r} does not end in a past-tense verb; name what happened, e.g. product_viewed or order_placed"
        )
    return value


def _follows_rule(value: str) -> bool:
    try:
        check_event_name(value)
    except EventNameError:
        return False
    return True


def received_event_names() -> list[str]:
    """Return the distinct names of the events stored, sorted."""
    from marketing.models import Event

    if connection.vendor == "postgresql":
        # A loose index scan over (name, occurred_at): one probe per distinct name, not a read of every event.
        table = Event._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""WITH RECURSIVE names(name) AS (
                        (SELECT name FROM {table} ORDER BY name LIMIT 1)
                        UNION ALL
                        SELECT (SELECT e.name FROM {table} e WHERE e.name > names.name ORDER BY e.name LIMIT 1)
                        FROM names WHERE names.name IS NOT NULL)
                    SELECT name FROM names WHERE name IS NOT NULL"""
            )
            return [row[0] for row in cursor.fetchall()]
    return sorted(Event.objects.order_by().values_list("name", flat=True).distinct())


def unknown_event_warnings(names: list[str]) -> list[str]:
    """Return a warning for each name no stored event carries, with the nearest names received."""
    from marketing.models import Event

    missing = [name for name in dict.fromkeys(names) if not Event.objects.filter(name=name).exists()]
    if not missing:
        return []
    received = received_event_names()
    warnings = []
    for name in missing:
        nearest = difflib.get_close_matches(name, received, n=SUGGESTIONS, cutoff=0.6)
        advice = f"; did you mean {' or '.join(f'{option!r}' for option in nearest)}?" if nearest else ""
        warnings.append(f"no event named {name!r} has been received yet, so nothing will match it until one is{advice}")
    return warnings
