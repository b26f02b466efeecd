"""Keeping secrets out of what benchd writes: one helper for URLs and messages, one logging filter.

:func:`redact` removes passwords from URLs (``postgresql://user:pw@host`` -> ``postgresql://user:***@host``),
secret-looking query parameters and ``key=value`` pairs (``password=``, ``token=``, ``sig=``...), bearer
tokens, and any value of a secret-named environment variable (``*_TOKEN``, ``*_PASSWORD``, ``*_SECRET``,
``*_KEY``) wherever it appears. :class:`RedactingFilter` applies it to every log record (message,
arguments and traceback) a handler writes.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):(?P<pw>[^@\s/]*)@")
_SECRET_KEYS = r"password|passwd|pwd|token|access_token|api_key|apikey|secret|client_secret|sig|signature"
_KEY_VALUE = re.compile(rf"(?P<head>\b(?:{_SECRET_KEYS})\s*[=:]\s*)(?P<value>[^&\s,;'\"]+)", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{6,})")
_SECRET_ENV_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL", re.IGNORECASE)
_MIN_SECRET_LEN = 6  # shorter values ("1", "true") would mask ordinary words


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-named variables in ``env`` (default ``os.environ``), longest first."""
    env = os.environ if env is None else env
    values = {v for k, v in env.items() if _SECRET_ENV_NAME.search(k) and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` without URL passwords, secret parameters, bearer tokens and the given secret values."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m['head']}{MASK}", text)
    for value in secrets or ():
        text = text.replace(value, MASK)
    return text


def redact_url(url: str) -> str:
    """A URL safe to log: its password (and secret query parameters) masked."""
    return redact(url)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts every record before it is formatted (message, args, traceback).

    Args:
        env: where secret values are read from, once (default ``os.environ``).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._secrets = secret_values(env)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: let the handler report it
            return True
        record.msg, record.args = redact(message, self._secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


def install_log_redaction(logger: logging.Logger | None = None, env: Mapping[str, str] | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    redacting = RedactingFilter(env)
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(redacting)
