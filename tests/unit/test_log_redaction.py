"""The logging safety net: secrets never reach a log line."""

from __future__ import annotations

from moorage.core.log import REDACTED, redact, scrub_text

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def test_values_under_secret_keys_are_blanked() -> None:
    event = {"client_secret": "s3cret", "password": "p", "clientId": "app", "nested": {"refresh_token": "r"}}
    assert redact(event) == {
        "client_secret": REDACTED,
        "password": REDACTED,
        "clientId": "app",
        "nested": {"refresh_token": REDACTED},
    }


def test_tokens_in_free_text_are_scrubbed() -> None:
    text = f"Authorization: Bearer {JWT} and Basic dXNlcjpwYXNzd29yZA== client_secret=abc&x=1"
    scrubbed = scrub_text(text)
    assert JWT not in scrubbed
    assert "dXNlcjpwYXNzd29yZA==" not in scrubbed
    assert "abc" not in scrubbed
    assert "x=1" in scrubbed


def test_identifiers_and_paths_stay_readable() -> None:
    event = {"principal_id": "1234", "credentials_file": "/data/bootstrap.json"}
    assert redact(event) == event
