"""Settings: defaults, validation, one clear line per mistake, and the CLI's handling of it."""

from __future__ import annotations

import pytest

from services.cli import main
from shared.errors import ConfigError
from shared.settings import Settings, load_settings


def test_defaults_and_derived_urls() -> None:
    settings = load_settings({"PUBLIC_BASE_URL": "https://abc.ngrok-free.app/", "MONGODB_URI": "mongodb://m:27017/crm"})
    assert settings.status_callback_url == "https://abc.ngrok-free.app/whatsapp/status"
    assert settings.mongodb_database == "crm"
    assert settings.sender_number == "+14155238886"


@pytest.mark.parametrize(("env", "name"), [
    ({"BACKEND_PORT": "abc"}, "BACKEND_PORT"),
    ({"TWILIO_ACCOUNT_SID": "not-a-sid"}, "TWILIO_ACCOUNT_SID"),
    ({"TWILIO_WHATSAPP_NUMBER": "+14155238886"}, "TWILIO_WHATSAPP_NUMBER"),
    ({"MONGODB_URI": "http://localhost"}, "MONGODB_URI"),
    ({"PUBLIC_BASE_URL": "ftp://x"}, "PUBLIC_BASE_URL"),
    ({"OWNER_ALERT_TEMPLATE_SID": "HX123"}, "OWNER_ALERT_TEMPLATE_SID"),
    ({"THANK_YOU_TEMPLATE_SID": "HX123"}, "THANK_YOU_TEMPLATE_SID"),
    ({"THANK_YOU_TEMPLATE_SID": "MG" + "0" * 32}, "THANK_YOU_TEMPLATE_SID"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
    ({"DEFAULT_COUNTRY": "France"}, "DEFAULT_COUNTRY"),
    ({"GEMINI_MODEL": " "}, "GEMINI_MODEL"),
    ({"TARGET_PHONE_NUMBER": "06 12 34 56 78"}, "TARGET_PHONE_NUMBER"),
])
def test_malformed_setting_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    message = str(info.value)
    assert message.startswith(name) and "\n" not in message


def test_thank_you_template_sid_is_optional_trimmed_and_reaches_the_rules() -> None:
    assert load_settings({}).rules().thank_you_template_sid == ""
    sid = "HX" + "0123456789abcdef" * 2
    assert load_settings({"THANK_YOU_TEMPLATE_SID": f" {sid} "}).rules().thank_you_template_sid == sid


def test_owner_alert_template_sid_is_optional_and_trimmed() -> None:
    assert load_settings({}).owner_alert_template_sid == ""
    sid = "HX" + "0123456789abcdef" * 2
    assert load_settings({"OWNER_ALERT_TEMPLATE_SID": f" {sid} "}).owner_alert_template_sid == sid
    assert load_settings({"OWNER_ALERT_TEMPLATE_SID": sid.upper()}).owner_alert_template_sid == sid.upper()


@pytest.mark.parametrize("value", [
    "HX123",
    "hx" + "ab" * 16,  # the prefix is upper-case
    "MG" + "ab" * 16,  # a Messaging Service SID, not a Content SID
    "HX" + "gh" * 16,  # not hexadecimal
    "HX" + "ab" * 16 + "a",  # one character too many
])
def test_malformed_owner_alert_template_sid_stops_with_one_line(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OWNER_ALERT_TEMPLATE_SID": value})
    message = str(info.value)
    assert message.startswith("OWNER_ALERT_TEMPLATE_SID: must look like HX followed by 32 hexadecimal")
    assert "\n" not in message


def test_cli_stops_on_a_malformed_owner_alert_template_sid(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> Settings:
        return load_settings({"OWNER_ALERT_TEMPLATE_SID": "HXnope"})

    assert main(["status"], load=bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: configuration: OWNER_ALERT_TEMPLATE_SID") and "\n" not in err


def test_require_names_the_missing_variable() -> None:
    settings = load_settings({"TWILIO_AUTH_TOKEN": ""})
    with pytest.raises(ConfigError, match=r"^TWILIO_AUTH_TOKEN is not set"):
        settings.require("twilio_auth_token")


def test_secrets_do_not_show_in_repr() -> None:
    settings = load_settings({"TWILIO_AUTH_TOKEN": "supersecret-token-value", "GEMINI_API_KEY": "key-value-123"})
    assert "supersecret-token-value" not in repr(settings)
    assert "key-value-123" not in repr(settings)


def test_cli_prints_one_error_line_for_a_bad_setting(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> Settings:
        return load_settings({"BACKEND_PORT": "70000"})

    assert main(["status"], load=bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: configuration: BACKEND_PORT") and "\n" not in err


def test_lenient_spellings_are_normalised() -> None:
    settings = load_settings({"LOG_LEVEL": "debug", "DEFAULT_COUNTRY": "be",
                              "TARGET_PHONE_NUMBER": "whatsapp:+33612345678"})
    assert (settings.log_level, settings.default_country, settings.target_phone_number) == (
        "DEBUG", "BE", "+33612345678")


REAL_TWILIO = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "secret"}


@pytest.mark.parametrize("command", [["webhook"], ["worker", "sending"]])
def test_real_twilio_without_a_public_url_stops_at_start(command: list[str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Twilio cannot call 127.0.0.1: every webhook would be refused and every callback lost."""
    assert main(command, load=lambda: load_settings(REAL_TWILIO)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: configuration: PUBLIC_BASE_URL is not set") and "\n" not in err
    assert "secret" not in err


def test_a_public_url_is_not_needed_with_the_simulator_and_is_enough_with_twilio() -> None:
    load_settings({**REAL_TWILIO, "TWILIO_API_BASE_URL": "http://127.0.0.1:8055"}).require_public_url()
    load_settings({**REAL_TWILIO, "PUBLIC_BASE_URL": "https://relance.example.com"}).require_public_url()
    load_settings({}).require_public_url()  # no Twilio at all: nothing to reach


@pytest.mark.parametrize(("env", "message"), [
    ({"STALE_AFTER_SECONDS": "inf"}, "STALE_AFTER_SECONDS: must be at most 31536000 seconds (365 days)"),
    ({"STALE_AFTER_SECONDS": "1e20"}, "STALE_AFTER_SECONDS: must be at most 31536000 seconds (365 days)"),
    ({"SCHEDULER_INTERVAL_SECONDS": "31536001"},
     "SCHEDULER_INTERVAL_SECONDS: must be at most 31536000 seconds (365 days)"),
    ({"MIN_GAP_BETWEEN_MESSAGES": "400d"}, "MIN_GAP_BETWEEN_MESSAGES: duration '400d' is too long: at most 365 days"),
    ({"MIN_GAP_BETWEEN_MESSAGES": "99999999999999999999d"}, "MIN_GAP_BETWEEN_MESSAGES: duration"),
])
def test_durations_in_settings_are_capped_at_a_year_with_one_line(env: dict[str, str], message: str) -> None:
    """A huge value used to pass and overflow timedelta (or the scheduler's wait) once the process ran."""
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_durations_of_a_year_are_accepted() -> None:
    settings = load_settings({"STALE_AFTER_SECONDS": "31536000", "SCHEDULER_INTERVAL_SECONDS": "0.5",
                              "MIN_GAP_BETWEEN_MESSAGES": "365d"})
    assert settings.stale_after_seconds == 31536000 and settings.min_gap.days == 365
