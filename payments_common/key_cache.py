"""The verification keys a service holds: fetched, cached and refreshed without locking tokens out."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from payments_common.errors import Unavailable

ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256"})
log = logging.getLogger("payments.tokens")


@dataclass(frozen=True)
class VerificationKey:
    """A key that verifies tokens of exactly one algorithm."""

    kid: str
    algorithm: str
    key: Any = field(repr=False)


KeyFetcher = Callable[[], Mapping[str, VerificationKey]]


def keys_from_jwks(jwks_json: str) -> dict[str, VerificationKey]:
    """Parse a JWK set, keeping only asymmetric public keys with a kid and alg."""
    result: dict[str, VerificationKey] = {}
    for entry in json.loads(jwks_json).get("keys", []):
        alg, kid = entry.get("alg"), entry.get("kid")
        if alg not in ASYMMETRIC_ALGORITHMS or not kid or "d" in entry:
            continue
        result[kid] = VerificationKey(kid=kid, algorithm=alg, key=jwt.PyJWK.from_dict(entry).key)
    return result


class CachedKeys:
    """The verification keys in memory: refreshed on a schedule, on an unknown kid at most once per
    `min_refresh_seconds`, and never dropped on a failed fetch (the last good set keeps serving).

    An unknown kid cannot lock valid tokens out: a refresh spent by someone else's token at most
    delays a genuine new-key token by one `min_refresh_seconds` (answered UNAVAILABLE with
    RetryInfo while the keys are older than the token), and without any keys a call is
    UNAVAILABLE, never UNAUTHENTICATED. Failed fetches are logged and back off up to 30 s.
    """

    def __init__(
        self,
        fetch: KeyFetcher,
        min_refresh_seconds: float = 1.0,
        refresh_seconds: float = 300.0,
        name: str = "signing keys",
    ):
        self._fetch = fetch
        self._min_refresh = min_refresh_seconds
        self._refresh_every = refresh_seconds
        self._name = name
        self._keys: Mapping[str, VerificationKey] = {}
        self._ok_at = float("-inf")  # monotonic time of the last successful fetch
        self._ok_wall = float("-inf")  # the same moment in epoch seconds (to compare with a token's iat)
        self._tried_at = float("-inf")
        self._failures = 0
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True once a fetch has succeeded (the keys may be old, but there are keys)."""
        return self._ok_at > float("-inf")

    def _refresh(self) -> None:
        self._tried_at = time.monotonic()
        try:
            keys = dict(self._fetch())
        except Exception as err:
            self._failures += 1
            log.warning(
                "fetching the %s failed; serving the last good set",
                self._name,
                extra={"failures": self._failures, "error": f"{type(err).__name__}: {str(err)[:200]}"},
            )
            return
        if self._failures:
            log.info("fetched the %s again", self._name, extra={"after_failures": self._failures})
        self._keys, self._failures = keys, 0
        self._ok_at, self._ok_wall = time.monotonic(), time.time()

    def maintain(self) -> bool:
        """The scheduled refresh (the health loop calls it); True when there are keys."""
        now = time.monotonic()
        backoff = min(2.0**self._failures, 30.0) if self._failures else self._min_refresh
        if now - self._ok_at >= self._refresh_every and now - self._tried_at >= backoff:
            with self._lock:
                if time.monotonic() - self._tried_at >= backoff:
                    self._refresh()
        return self.ready

    def get(self, kid: str, issued_at: Callable[[], float | None] | None = None) -> VerificationKey | None:
        """The key for `kid`; None when it surely does not exist (keys fetched after the token was
        issued lack it). `issued_at` gives the token's `iat`, called only for an unknown kid."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            since = time.monotonic() - self._tried_at
            if since >= self._min_refresh:
                self._refresh()
                key = self._keys.get(kid)
                if key is None and self._failures:
                    raise self._unavailable("KEYS_UNAVAILABLE", 1.0)
                return key
            if not self.ready:
                raise self._unavailable("KEYS_UNAVAILABLE", self._min_refresh - since)
            issued = issued_at() if issued_at is not None else None
            if issued is not None and issued + 1 > self._ok_wall:  # `iat` is whole seconds
                raise self._unavailable("KEY_UNKNOWN_YET", self._min_refresh - since)
            return None

    def _unavailable(self, reason: str, retry_after: float) -> Unavailable:
        message = {
            "KEYS_UNAVAILABLE": f"the {self._name} are unavailable, so the token cannot be verified; retry",
            "KEY_UNKNOWN_YET": "the token's signing key is not known yet; retry",
        }[reason]
        return Unavailable(message, retry_after=max(retry_after, 0.1), reason=reason)
