"""A render deadline enforced from outside the template: a timer thread interrupts the rendering thread.

Checks inside the sandbox (on calls, attribute reads, loops over `range`) only fire where the
sandbox is asked; a loop over a long string or an operator chain never asks. At the deadline a
timer raises `RenderInterrupted` asynchronously in the rendering thread, at its next bytecode,
whatever the template is doing. Single C-level operations cannot be interrupted, which is why the
sandbox also bounds every value's size before it is built (`campaigns.rendering.limits`).
"""

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RenderInterrupted(BaseException):
    """The render deadline passed and the timer stopped the template.

    A BaseException, like KeyboardInterrupt: no `except Exception` in Jinja or the sandbox can swallow it.
    """


def _raise_in_thread(thread_id: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception is not None else None
    )


@contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """Raise RenderInterrupted in this thread if the block is still running after `seconds`."""
    thread_id = threading.get_ident()
    lock = threading.Lock()
    state = {"running": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["running"]:
                state["fired"] = True
                _raise_in_thread(thread_id, RenderInterrupted)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["running"] = False
            if state["fired"]:
                # Fired but not yet delivered (the block ended first): clear it so it never lands elsewhere.
                _raise_in_thread(thread_id, None)
        timer.cancel()
