"""An SMTP server for the benchmarks that notes when each message arrived and for whom.

    python bench/smtp_recorder.py --port 8025 --out var/bench/arrivals.log

Accepts every message (aiosmtpd) and appends one line per recipient, `<epoch seconds> <address>`,
taken with `time.time()` once the whole message is in, i.e. when a mailbox would have it. The
line is flushed at once, so a reader can follow the file while the server runs. Stops on SIGTERM
or SIGINT. A Python SMTP server takes about 600 messages a second; the benchmarks that use it
send far fewer.
"""

import argparse
import signal
import threading
import time
from pathlib import Path
from typing import TextIO

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


class ArrivalRecorder:
    """An aiosmtpd handler that writes each recipient's arrival time to a file and accepts the message."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        # aiosmtpd runs handlers on one event loop, but the lock keeps lines whole if that ever changes.
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        arrived = time.time()
        lines = "".join(f"{arrived:.6f} {address.lower()}\n" for address in envelope.rcpt_tos)
        with self.lock:
            self.out.write(lines)
            self.out.flush()
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="File to append '<epoch> <recipient>' lines to.")
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with open(args.out, "a", encoding="utf-8") as out:
        controller = Controller(
            ArrivalRecorder(out), hostname=HOST, port=args.port, server_hostname="kairos-bench-smtp"
        )
        controller.start()
        print(f"listening on {HOST}:{args.port}, writing to {args.out}", flush=True)
        stop.wait()
        controller.stop()


if __name__ == "__main__":
    main()
