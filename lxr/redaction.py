"""Keeping secrets out of what lxr prints: one function masks the passwords of URLs (and
``password=`` settings) in any text, and a logging filter applies it to every log line.

Database URLs carry passwords (``postgresql+psycopg://user:PASSWORD@host/db``) and reach
output in many ways: the controller's start-up line, error messages, exceptions that quote the
URL they could not parse. Everything the CLI and the controller print goes through
:func:`redact`, so none of it lands in a terminal, a CI log or journald.
"""

from __future__ import annotations

import logging
import re

__all__ = ["MASK", "RedactingFilter", "install_log_redaction", "redact"]

MASK = "***"

# scheme://user:password@  (greedy to the last @ of the word: a password may hold an @)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s'\"]*):[^\s'\"]*@")
# password=... in a query string or a libpq connection string
_PASSWORD_SETTING = re.compile(r"(?i)\b(password|passwd|pwd)=[^\s&;'\"]*")


def redact(text: str) -> str:
    """``text`` with every URL password and ``password=`` value replaced by ``***``."""
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    return _PASSWORD_SETTING.sub(rf"\1={MASK}", text)


class RedactingFilter(logging.Filter):
    """Redacts a record's message and its formatted exception before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; rewrites its text."""
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactingFilter` to every handler of ``logger`` (the root logger by
    default), where records of all loggers pass, once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
