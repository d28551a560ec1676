"""`payment_method` is a processor token, never a card number; secrets stay out of reprs."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from transaction_service.connectors import InvalidPaymentMethod, check_payment_method
from transaction_service.connectors.payment_methods import looks_like_card_number, luhn_valid
from transaction_service.connectors.sandbox import SandboxConfig, SandboxConnector

CARD_NUMBERS = [
    "4242424242424242",  # Visa test card
    "4242 4242 4242 4242",
    "4242-4242-4242-4242",
    "5555 5555 5555 4444",  # Mastercard
    "378282246310005",  # Amex, 15 digits
    "6011111111111117",  # Discover
    "4222222222222",  # 13 digits
    "6304000000000000018",  # 19 digits (Maestro)
    "tok_4242424242424242",  # text around it
    "4242424242424242 123",  # joined to a CVC
    "\uff14\uff12" * 8,  # full-width digits
    "4242 - 4242 - 4242 - 4242",
]
TOKENS = [
    "pm_card_visa",
    "pm_card_insufficient_funds",
    "pm_1NqLz2Eo8dTgYh0kA3b4C5d6",  # a Stripe-like id
    "8415718415718415",  # 16 digits that fail Luhn
    "tx_123456789012",  # 12 digits: too short for a card
    "2024-05-01-1234567",  # dates and counters, separated by more than the allowance
]


@pytest.mark.parametrize("value", CARD_NUMBERS)
def test_a_card_number_is_refused_without_being_echoed(value: str) -> None:
    assert looks_like_card_number(value)
    with pytest.raises(InvalidPaymentMethod) as caught:
        check_payment_method(value)
    assert "card number" in str(caught.value)
    assert value not in str(caught.value) and "4242" not in str(caught.value)


@pytest.mark.parametrize("value", TOKENS)
def test_a_processor_token_is_accepted(value: str) -> None:
    assert check_payment_method(value) == value


@pytest.mark.parametrize("value", ["", "pm card visa", "pm_\x00", "x" * 256, "pm_é"])
def test_a_value_that_is_no_token_is_refused(value: str) -> None:
    with pytest.raises(InvalidPaymentMethod, match="processor token"):
        check_payment_method(value)


def test_luhn_is_the_card_check() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")


def test_the_connector_never_shows_its_secrets() -> None:
    config = SandboxConfig(
        "http://127.0.0.1:1", SecretStr("sk_test_hidden_value_1"), SecretStr("whsec_hidden_2")
    )
    connector = SandboxConnector(config)
    shown = f"{config!r} {config} {connector!r} {connector}"
    assert "hidden_value_1" not in shown and "hidden_2" not in shown
    asyncio.run(connector.aclose())
