"""Shared by the money-invariant tests: their knobs, and the outcome of one call.

Round counts and the bank run's length come from the environment so that a
longer soak is one variable away; the defaults keep the CI run short:
  ADVERSARIAL_TRANSITION_ROUNDS (200), ADVERSARIAL_KEY_ROUNDS (20),
  ADVERSARIAL_REFUND_ROUNDS (30), ADVERSARIAL_BANK_SECONDS (30).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import grpc

from tests.helpers import details_of

TRANSITION_ROUNDS = int(os.environ.get("ADVERSARIAL_TRANSITION_ROUNDS", "200"))
KEY_ROUNDS = int(os.environ.get("ADVERSARIAL_KEY_ROUNDS", "20"))
REFUND_ROUNDS = int(os.environ.get("ADVERSARIAL_REFUND_ROUNDS", "30"))
BANK_SECONDS = float(os.environ.get("ADVERSARIAL_BANK_SECONDS", "30"))
OK = grpc.StatusCode.OK


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[grpc.StatusCode, Any]:
    """(code, response or error details) of `call(*args, **kwargs)`."""
    try:
        return OK, call(*args, **kwargs)
    except grpc.RpcError as err:
        return err.code(), details_of(err)
