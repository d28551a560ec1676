"""Hypothesis strategies of hostile requests, shared by the fuzzing tests of both services.

Hostile text (NUL, controls, invisible, right-to-left and oversized values, injection text),
extreme integers and enum numbers, odd UUID forms, out-of-range timestamps, and raw bytes that
are not (or only oddly) a protobuf message; `examples` sets an example count, multiplied by
ADVERSARIAL_FUZZ_SCALE. No answer may be one of `FORBIDDEN`: UNKNOWN or INTERNAL (SPEC §4: a
server bug), UNAVAILABLE or DEADLINE_EXCEEDED (nothing here overloads a server).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.adversarial.tools import BUG_CODES

SCALE = float(os.environ.get("ADVERSARIAL_FUZZ_SCALE", "1"))
FORBIDDEN = BUG_CODES | {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def examples(n: int) -> Any:
    return settings(
        max_examples=max(1, int(n * SCALE)),
        deadline=None,
        database=None,  # no .hypothesis folder in the tree; failures print their reproducing example
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# ---- hostile values ---------------------------------------------------------------------------

SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "EUR\x00",
    "\u202eRLO",
    "\ufeffBOM",
    "e\u0301",  # decomposed é
    "\u00e9",
    "İ",  # upper case that grows when lowered
    "ß",
    "\U0001f4a9" * 30,
    "\u0000" * 10,
    "\r\n\t",
    "' OR '1'='1' --",
    "'; DROP TABLE payments.transactions; --",
    "../../../../etc/passwd",
    "%s%s%n%x",
    "${jndi:ldap://evil}",
    "<script>alert(1)</script>",
    "eur",
    "EUR",
    "JPY",
    "XTS",
    "XAU",
    "E U",
    "\uff25\uff35\uff32",  # full-width EUR
]
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
hostile_text = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    unicode_text,
    unicode_text,
    st.sampled_from(SPECIAL_TEXT),
    st.integers(min_value=100, max_value=150_000).map(lambda n: "x" * n),  # oversized, under 1 MiB
)
INT64 = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(
        [0, -1, 1, 2**63 - 1, -(2**63), 10**12, 10**12 + 1, 10**14, 10**14 + 1, 10**15, 2**53 + 1]
    ),
)
INT32 = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31 - 1), st.sampled_from([0, 1, 2, 3, 4, 5, -1, 500, 501])
)
ENUM = st.one_of(st.integers(min_value=-(2**31), max_value=2**31 - 1), st.integers(min_value=0, max_value=6))


def uuid_forms(known: list[str]) -> Any:
    sample = str(uuid.uuid4())
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(
            [
                "",
                sample.upper(),
                sample.replace("-", ""),
                "{" + sample + "}",
                "urn:uuid:" + sample,
                sample + "\x00",
                " " + sample,
                sample[:-1],
                sample + "0",
                "00000000-0000-0000-0000-000000000000",
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
                "g" * 8 + sample[8:],
                "1" * 32,
                "1" * 10_000,
            ]
        ),
        st.uuids().map(str),
        hostile_text,
    )


def timestamps() -> Any:
    return st.one_of(
        st.none(),
        st.builds(
            lambda s, n: Timestamp(seconds=s, nanos=n),
            st.one_of(INT64, st.integers(min_value=-(10**10), max_value=10**11)),
            INT32,
        ),
    )


def wire_field(number: int, wire_type: int, payload: bytes) -> bytes:
    """One protobuf field with any number and wire type, as a hostile encoder would write it."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    tag = varint((number << 3) | wire_type)
    if wire_type == 2:
        return tag + varint(len(payload)) + payload
    if wire_type == 0:
        return tag + payload[:10]
    return tag + payload


RAW = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.builds(
            wire_field,
            st.integers(min_value=1, max_value=20),
            st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]),
            st.one_of(
                st.binary(max_size=40), st.sampled_from([b"\xc3\x28", b"\xff\xfe", b"\xed\xa0\x80", b"\x80"])
            ),
        ),
        max_size=6,
    ).map(b"".join),
)
METHODS = [
    "CreateTransaction",
    "GetTransaction",
    "ListTransactions",
    "UpdateTransactionStatus",
    "ListTransactionEvents",
]
