"""Shared by the retry tests: the status codes, and a patient policy (8 attempts, short backoffs)."""

from __future__ import annotations

import grpc

import payments_client as pc

Code = grpc.StatusCode
PATIENT = pc.RetryPolicy(max_attempts=8, initial_backoff_seconds=0.1, max_backoff_seconds=0.5)
