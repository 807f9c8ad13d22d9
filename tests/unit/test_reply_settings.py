"""The reply settings: PAID_CLAIM_ACTION, MAX_PROMISE_DAYS, MAX_AUTO_REPLIES_PER_DAY."""

from __future__ import annotations

import pytest

from services.cli import main
from shared.errors import ConfigError
from shared.settings import Settings, load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.paid_claim_action == "pause_and_verify"
    assert settings.max_promise_days == 30
    assert settings.max_auto_replies_per_day == 3


def test_values_are_read_and_the_action_is_case_insensitive() -> None:
    settings = load_settings({"PAID_CLAIM_ACTION": " Stop ", "MAX_PROMISE_DAYS": "366",
                              "MAX_AUTO_REPLIES_PER_DAY": "0"})
    assert settings.paid_claim_action == "stop"
    assert (settings.max_promise_days, settings.max_auto_replies_per_day) == (366, 0)


@pytest.mark.parametrize(("env", "message"), [
    ({"PAID_CLAIM_ACTION": "verify"}, "PAID_CLAIM_ACTION: must be one of pause_and_verify, stop"),
    ({"PAID_CLAIM_ACTION": ""}, "PAID_CLAIM_ACTION: must be one of pause_and_verify, stop"),
    ({"MAX_PROMISE_DAYS": "0"}, "MAX_PROMISE_DAYS: Input should be greater than or equal to 1"),
    ({"MAX_PROMISE_DAYS": "400"}, "MAX_PROMISE_DAYS: Input should be less than or equal to 366"),
    ({"MAX_PROMISE_DAYS": "a month"}, "MAX_PROMISE_DAYS: Input should be a valid integer"),
    ({"MAX_AUTO_REPLIES_PER_DAY": "-1"}, "MAX_AUTO_REPLIES_PER_DAY: Input should be greater than or equal to 0"),
])
def test_a_bad_value_is_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_the_cli_stops_on_a_bad_paid_claim_action(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> Settings:
        return load_settings({"PAID_CLAIM_ACTION": "trust"})

    assert main(["status"], load=bad) == 2
    assert capsys.readouterr().err == "error: configuration: PAID_CLAIM_ACTION: must be one of pause_and_verify, stop\n"
