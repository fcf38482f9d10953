"""Who hears about newly stored events: a registry that other apps join from their `ready()`.

`marketing` imports no other app, so campaigns learn of new events by registering a listener
here rather than being called by name. Listeners run after the storing transaction commits
(callers wrap `notify_events_stored` in `transaction.on_commit`), so they never see rows that
were rolled back.
"""

import logging
from collections.abc import Callable

logger = logging.getLogger("kairos.events")

EventListener = Callable[[list[int]], None]  # receives the ids of the Event rows just stored

_listeners: list[EventListener] = []


def register_event_listener(listener: EventListener) -> None:
    """Add a listener; registering the same one twice is a mistake and raises."""
    if listener in _listeners:
        raise ValueError(f"event listener {listener!r} is already registered")
    _listeners.append(listener)


def unregister_event_listener(listener: EventListener) -> None:
    """Remove a listener (tests register theirs temporarily); an unknown one raises."""
    try:
        _listeners.remove(listener)
    except ValueError:
        raise ValueError(f"event listener {listener!r} is not registered") from None


def notify_events_stored(event_ids: list[int]) -> None:
    """Call every listener with the ids, in registration order.

    The events are committed by now, so a failing listener must not fail the request that stored
    them: it is logged and the others still run.
    """
    if not event_ids:
        return
    for listener in list(_listeners):
        try:
            listener(list(event_ids))
        except Exception:
            logger.exception("event listener %r failed for %d stored events", listener, len(event_ids))
