"""Auth-specific counters (the RPC and pool metrics come from payments_common.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

LOGIN_FAILURES = Counter("auth_login_failures_total", "Failed logins, by kind of principal", ["kind"])
LOGIN_THROTTLED = Counter("auth_login_throttled_total", "Logins refused by the brute-force throttle")
TOKENS_ISSUED = Counter("auth_tokens_issued_total", "Access tokens issued, by kind of principal", ["kind"])
