"""The dashboard's parts without a browser: money, filters, sessions, settings, error words."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from dashboard.errors import ServiceError, decode
from dashboard.listing import ListQuery
from dashboard.money import AmountError, format_minor, parse_major
from dashboard.sessions import SessionStore, Signer, User
from payments.transaction.v1 import transaction_pb2 as pb
from payments_common import currencies
from tests.servers import ROOT


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (500, "JPY", "¥500"),
        (1250, "EUR", "€12.50"),
        (123456789, "USD", "$1,234,567.89"),
        (1234567, "IQD", "IQD\u00a01,234.567"),  # ISO 4217 says 3 digits; CLDR would say 0
        (12345, "UYW", "UYW\u00a01.2345"),
        (5, "CHF", "CHF\u00a00.05"),
    ],
)
def test_amounts_are_shown_with_their_currencys_exponent(minor, currency, shown):
    assert format_minor(minor, currency) == shown


def test_every_supported_currency_formats_and_reads_back():
    for code, exponent in currencies.EXPONENTS.items():
        text = "7" if exponent == 0 else "7." + "1" * exponent
        assert parse_major(text, code) == int("7" + "1" * exponent)
        assert format_minor(1, code)  # a symbol or code for every one


def test_typed_amounts_are_read_in_minor_units_or_explained():
    assert parse_major("4.5", "EUR") == 450 and parse_major("500", "JPY") == 500
    assert parse_major("4,5", "EUR", "de_DE") == 450
    for text, currency, words in [
        ("4.555", "EUR", "at most 2 digits"),
        ("1.5", "JPY", "no minor unit"),
        ("0", "EUR", "more than zero"),
        ("-3", "EUR", "such as 4.50"),
        ("1e3", "EUR", "such as 4.50"),
        ("9" * 25, "EUR", "too large"),
    ]:
        with pytest.raises(AmountError, match=words):
            parse_major(text, currency)


def test_the_list_filter_reads_the_query_string_and_builds_the_request():
    query, errors = ListQuery.parse(
        {"status": "pending", "type": "PAYMENT", "currency": "eur", "from": "2026-01-01", "to": "2026-01-31"},
        is_admin=False,
    )
    assert not errors and query.status == "PENDING" and query.currency == "EUR"
    request = query.request(25)
    assert request.status == pb.TRANSACTION_STATUS_PENDING and request.type == pb.TRANSACTION_TYPE_PAYMENT
    assert request.created_from.ToDatetime().date() == date(2026, 1, 1)
    assert request.created_to.ToDatetime().date() == date(2026, 2, 1)  # the whole last day is in
    assert (
        query.link() == "/transactions?status=PENDING&type=PAYMENT&currency=EUR&from=2026-01-01&to=2026-01-31"
    )


def test_a_bad_filter_is_dropped_with_words_and_only_admins_pick_users():
    query, errors = ListQuery.parse(
        {"status": "LOST", "currency": "euro", "from": "yesterday", "user": "someone"}, is_admin=True
    )
    assert query == ListQuery()
    assert len(errors) == 4
    mine, _ = ListQuery.parse({"user": "0b6f1b1e-0000-4000-8000-000000000000"}, is_admin=False)
    assert mine.user_id == ""


def test_sessions_expire_when_idle_or_too_old_and_are_handed_back_for_revocation():
    now = [0.0]
    store = SessionStore(idle_seconds=10, max_seconds=30, max_sessions=2, clock=lambda: now[0])
    user = User("u", "u@example.com", "U", False)
    first = store.create(user, "access", "refresh", 900)
    now[0] = 9
    assert store.get(first.id) is first
    now[0] = 18
    assert store.get(first.id) is first  # idle time restarts on use
    now[0] = 29
    assert store.get(first.id) is None  # 11 s idle
    second = store.create(user, "a", "r", 900)
    store.create(user, "a", "r", 900)
    store.create(user, "a", "r", 900)  # over the cap: the oldest goes
    assert store.get(second.id) is None
    ended = store.sweep()
    assert first in ended and second in ended


def test_signed_references_refuse_any_change():
    signer = Signer(b"k" * 32)
    signed = signer.sign("session", "abc")
    assert signer.unsign("session", signed) == "abc"
    assert signer.unsign("login", signed) is None  # a value for one purpose is not good for another
    assert signer.unsign("session", "abd" + signed[3:]) is None
    assert Signer(b"j" * 32).unsign("session", signed) is None


def _status_error(reason: str, violations: dict[str, str]) -> grpc.RpcError:
    details = []
    info, bad = any_pb2.Any(), any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="transaction.payments"))
    details.append(info)
    if violations:
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=k, description=v)
                    for k, v in violations.items()
                ]
            )
        )
        details.append(bad)
    status = status_pb2.Status(code=9, message="refund exceeds", details=details)

    class Failed(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.FAILED_PRECONDITION

        def details(self):
            return "refund exceeds"

        def trailing_metadata(self):
            return (("grpc-status-details-bin", status.SerializeToString()),)

    return Failed()


def test_service_errors_are_put_into_words():
    failure = decode(_status_error("REFUND_EXCEEDS_REMAINING", {}))
    assert failure.reason == "REFUND_EXCEEDS_REMAINING"
    assert failure.words == "The refund is more than what is left to refund on this payment."
    invalid = decode(_status_error("INVALID_ARGUMENT", {"amount_minor": "must be positive"}))
    assert invalid.words == "Please correct: Amount: must be positive."
    assert ServiceError(grpc.StatusCode.UNAVAILABLE).words.startswith("The payment service is unavailable")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "DASHBOARD_SESSION_SECRET: required"),
        ("changeme", "DASHBOARD_SESSION_SECRET: is a placeholder"),
        ("short", "DASHBOARD_SESSION_SECRET: must be at least 32 bytes"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(value, words, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHBOARD_")}
    if value is not None:
        env["DASHBOARD_SESSION_SECRET"] = value
    result = subprocess.run(
        [sys.executable, "-m", "dashboard"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"configuration error: {words}"), result.stderr


def test_a_bad_port_is_named():
    env = {**os.environ, "DASHBOARD_SESSION_SECRET": "s" * 40, "DASHBOARD_PORT": "http"}
    result = subprocess.run(
        [sys.executable, "-m", "dashboard"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and result.stderr.startswith("configuration error: DASHBOARD_PORT:")
