"""Who hears about newly stored rows: listener registries that other apps join from their `ready()`.

`marketing` imports no other app, so campaigns learn of new events (and new inbound messages) by
registering a listener here rather than being called by name. Listeners run after the storing
transaction commits (callers wrap the notification in `transaction.on_commit`), so they never see
rows that were rolled back.
"""

import logging
from collections.abc import Callable

logger = logging.getLogger("kairos.events")

Listener = Callable[[list[int]], None]  # receives the ids of the rows just stored
EventListener = Listener


class Listeners:
    """Functions called, in registration order, with the ids of rows of one kind just committed."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._listeners: list[Listener] = []

    def register(self, listener: Listener) -> None:
        """Add a listener; registering the same one twice is a mistake and raises."""
        if listener in self._listeners:
            raise ValueError(f"{self.what} listener {listener!r} is already registered")
        self._listeners.append(listener)

    def unregister(self, listener: Listener) -> None:
        """Remove a listener (tests register theirs temporarily); an unknown one raises."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            raise ValueError(f"{self.what} listener {listener!r} is not registered") from None

    def notify(self, ids: list[int]) -> None:
        """Call every listener with the ids.

        The rows are committed by now, so a failing listener must not fail the request that stored
        them: it is logged and the others still run.
        """
        if not ids:
            return
        for listener in list(self._listeners):
            try:
                listener(list(ids))
            except Exception:
                logger.exception("%s listener %r failed for %d stored rows", self.what, listener, len(ids))


event_listeners = Listeners("event")
message_listeners = Listeners("inbound message")


def register_event_listener(listener: Listener) -> None:
    event_listeners.register(listener)


def unregister_event_listener(listener: Listener) -> None:
    event_listeners.unregister(listener)


def notify_events_stored(event_ids: list[int]) -> None:
    event_listeners.notify(event_ids)


def register_message_listener(listener: Listener) -> None:
    message_listeners.register(listener)


def unregister_message_listener(listener: Listener) -> None:
    message_listeners.unregister(listener)


def notify_messages_stored(message_ids: list[int]) -> None:
    message_listeners.notify(message_ids)
