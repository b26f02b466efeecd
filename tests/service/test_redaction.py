"""Secrets never reach a log line: URL passwords, secret parameters, bearer tokens, secret env values."""

from __future__ import annotations

import io
import logging

from benchd.redaction import RedactingFilter, install_log_redaction, redact, redact_url, secret_values


def test_urls_lose_their_passwords_and_secret_parameters():
    assert redact_url("postgresql://benchd:s3cr3t@db:5432/benchd") == "postgresql://benchd:***@db:5432/benchd"
    assert redact_url("postgresql://:pw@db/x") == "postgresql://:***@db/x"
    assert redact_url("sqlite:////var/lib/benchd/benchd.sqlite") == "sqlite:////var/lib/benchd/benchd.sqlite"
    assert redact("https://h/x?token=abc123&a=1&password=p") == "https://h/x?token=***&a=1&password=***"
    assert redact("dsn: host=db password=hunter2 user=u") == "dsn: host=db password=*** user=u"
    assert redact("Authorization: Bearer eyJhbGciOi.xyz") == "Authorization: Bearer ***"
    # ordinary words and config field names stay
    assert (
        redact("api_token_env=BENCHD_API_TOKEN signal=SIGTERM")
        == "api_token_env=BENCHD_API_TOKEN signal=SIGTERM"
    )


def test_secret_values_come_from_secret_named_variables_only():
    env = {"BENCHD_API_TOKEN": "tok-12345", "HOOK_SECRET": "hook-67890", "HOME": "/root", "X_TOKEN": "1"}
    assert secret_values(env) == ["hook-67890", "tok-12345"]  # too short a value is never masked
    assert (
        redact("token tok-12345 and hook-67890 in /root", secret_values(env)) == "token *** and *** in /root"
    )


def test_every_log_record_is_redacted_message_args_and_traceback():
    stream = io.StringIO()
    logger = logging.getLogger("benchd.test_redaction")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        install_log_redaction(logger, env={"MLFLOW_TRACKING_PASSWORD": "mlflow-pw-9"})
        install_log_redaction(logger, env={})  # idempotent: one filter per handler
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.warning("store %s up", "postgresql://u:pw-in-args@db/x")
        try:
            raise RuntimeError("cannot reach http://u:pw-in-trace@mlflow:5000 with mlflow-pw-9")
        except RuntimeError:
            logger.exception("poll failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "postgresql://u:***@db/x" in text and "http://u:***@mlflow:5000" in text
    for secret in ("pw-in-args", "pw-in-trace", "mlflow-pw-9"):
        assert secret not in text
    assert "Traceback" in text  # the traceback itself is kept
