"""Hand e-mails to a Django e-mail backend over one connection and say exactly what became of each.

Four outcomes: sent; rejected for good (a 5xx answer, with the server's reason); deferred (not
accepted, safe to try again: the server was down, busy, or said 4xx); and unknown (the message
may have been accepted: the connection broke after the whole message was handed over and
before the server answered). An unknown message is never sent again automatically.

On SMTP the steps are driven one by one (MAIL, RCPT, DATA), so the moment of a failure is known
and only that last step is ever ambiguous. Other backends (the file outbox, ESPs through
django-anymail) report per message through their own exceptions.
"""

import re
import smtplib
import socket
from contextlib import suppress
from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum

from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import sanitize_address

_LEADING_DOT = re.compile(rb"(?m)^\.")
TRANSIENT_ERRORS = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    smtplib.SMTPHeloError,
    ConnectionError,
    socket.timeout,
    TimeoutError,
    OSError,
)


class Outcome(StrEnum):
    SENT = "sent"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    detail: str = ""


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"{code} {text}".strip()


def _classify(code: int, text: bytes | str, step: str) -> Result:
    reason = f"{step}: {_reply(code, text)}"
    return Result(Outcome.REJECTED if 500 <= code < 600 else Outcome.DEFERRED, reason)


class Transport:
    """One open connection to the configured backend; use as a context manager."""

    def __init__(self) -> None:
        self.backend = get_connection(fail_silently=False)
        self.is_smtp = isinstance(self.backend, SmtpBackend)

    def __enter__(self) -> "Transport":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> None:
        """Connect; connection failures propagate, so the caller can defer the whole batch."""
        self.backend.open()

    def close(self) -> None:
        with suppress(*TRANSIENT_ERRORS):
            self.backend.close()

    def send(self, email) -> Result:
        """Send one message and report what became of it."""
        if self.is_smtp:
            return self._send_smtp(email)
        return self._send_backend(email)

    def _send_backend(self, email) -> Result:
        try:
            count = self.backend.send_messages([email])
        except Exception as error:  # noqa: BLE001 - each backend has its own exceptions; classify by name
            return _classify_backend_error(error)
        return Result(Outcome.SENT) if count else Result(Outcome.DEFERRED, "the backend sent nothing")

    def _send_smtp(self, email) -> Result:
        smtp = self.backend.connection
        if smtp is None:
            try:
                self.backend.open()
            except TRANSIENT_ERRORS as error:
                return Result(Outcome.DEFERRED, f"connect: {error}")
            smtp = self.backend.connection
        encoding = email.encoding or "utf-8"
        try:
            from_address = sanitize_address(email.from_email, encoding)
            recipients = [sanitize_address(address, encoding) for address in email.recipients()]
            payload = email.message().as_bytes(linesep="\r\n")
        except Exception as error:  # noqa: BLE001 - a message that cannot be built fails alone
            return Result(Outcome.REJECTED, f"message could not be built: {error}")
        try:
            smtp.ehlo_or_helo_if_needed()
            code, text = smtp.mail(from_address)
            if code != 250:
                smtp.rset()
                return _classify(code, text, "MAIL FROM")
            for address in recipients:
                code, text = smtp.rcpt(address)
                if code not in (250, 251):
                    smtp.rset()
                    return _classify(code, text, f"RCPT TO {parseaddr(address)[1]}")
            code, text = smtp.docmd("data")
            if code != 354:
                smtp.rset()
                return _classify(code, text, "DATA")
            body = _LEADING_DOT.sub(b"..", payload)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            smtp.send(body + b".\r\n")
        except TRANSIENT_ERRORS as error:
            self._drop()
            return Result(Outcome.DEFERRED, f"connection lost before the message was complete: {error}")
        try:
            code, text = smtp.getreply()
        except TRANSIENT_ERRORS as error:
            self._drop()
            return Result(Outcome.UNKNOWN, f"no answer after the message was sent: {error}")
        if code == 250:
            return Result(Outcome.SENT, _reply(code, text))
        return _classify(code, text, "end of DATA")

    def _drop(self) -> None:
        """Forget a broken connection; the next send opens a new one."""
        try:
            self.backend.connection.close()
        except (AttributeError, *TRANSIENT_ERRORS):
            pass
        self.backend.connection = None


def _classify_backend_error(error: Exception) -> Result:
    name = type(error).__name__
    detail = f"{name}: {error}"
    if name in {"AnymailRecipientsRefused", "AnymailInvalidAddress", "BadHeaderError"}:
        return Result(Outcome.REJECTED, detail)
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        if status == 429 or status >= 500:
            return Result(Outcome.DEFERRED, detail)
        return Result(Outcome.REJECTED, detail)
    if name in {"ReadTimeout", "Timeout"}:
        return Result(Outcome.UNKNOWN, detail)
    if isinstance(error, TRANSIENT_ERRORS) or name in {"ConnectionError", "ConnectTimeout"}:
        return Result(Outcome.DEFERRED, detail)
    return Result(Outcome.REJECTED, detail)
