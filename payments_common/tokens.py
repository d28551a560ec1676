"""Access-token verification: public keys only, algorithms pinned per key, claims checked.

The transaction service holds nothing here that can mint a token. An
unknown `kid` triggers at most one key refresh per `min_refresh_seconds`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import jwt

from payments_common.errors import Unauthenticated
from payments_common.key_cache import (
    ASYMMETRIC_ALGORITHMS,
    CachedKeys,
    KeyFetcher,
    VerificationKey,
    keys_from_jwks,
)

__all__ = ["ASYMMETRIC_ALGORITHMS", "CachedKeys", "KeyFetcher", "VerificationKey", "keys_from_jwks"]

ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068 header typ
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]
SCOPE_SETTLE = "transactions:settle"
SCOPE_WATCH = "transactions:watch"  # WatchTransactions of every user's transactions
HS256_KID = "hs256"  # the kid of tokens signed with the shared SECRET_KEY (ALGORITHM=HS256)


@dataclass(frozen=True)
class Principal:
    """A verified caller: the token's subject with its roles and scopes."""

    subject: str
    kind: str  # "user" or "service"
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    token_id: str = field(default="", repr=False)
    expires_at: int = field(default=0, repr=False)

    @property
    def is_admin(self) -> bool:
        """Admins may read any user's data and settle transactions."""
        return "admin" in self.roles

    def can(self, scope: str) -> bool:
        """True when the token grants `scope` (admins hold every scope)."""
        return self.is_admin or scope in self.scopes


class TokenVerifier:
    """Verifies bearer access tokens and returns the Principal they name.

    A verified token is remembered until its `exp` (never longer), so a client that reuses its
    token skips the signature check; forged or invalid tokens are never remembered. The cache
    holds at most `cache_size` tokens (expired ones are dropped first, then the oldest).
    """

    def __init__(
        self, keys: CachedKeys, *, issuer: str, audience: str, leeway: int = 5, cache_size: int = 10_000
    ):
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._cache_size = cache_size
        self._verified: dict[str, Principal] = {}
        self._cache_lock = threading.Lock()

    @property
    def keys(self) -> CachedKeys:
        """The verification keys (their `maintain` is the scheduled refresh)."""
        return self._keys

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token verified before and not expired since (no I/O, no crypto)."""
        cached = self._verified.get(token)
        if cached is not None:
            if time.time() < cached.expires_at:
                return cached
            self._verified.pop(token, None)
        return None

    def verify(self, token: str, *, patient: bool = True) -> Principal:
        """Verify signature, algorithm, type and claims; raise Unauthenticated otherwise.

        `patient`: a token newer than the keys whose kid is unknown while the keys were just
        refreshed is UNAVAILABLE (`KEY_UNKNOWN_YET`, retry after the refresh interval) rather than
        refused; the caller waits that long and verifies again with `patient=False`.
        """
        cached = self.remembered(token)
        if cached is not None:
            return cached
        principal = self._verify(token, patient)
        if self._cache_size > 0:
            self._remember(token, principal)
        return principal

    def _remember(self, token: str, principal: Principal) -> None:
        with self._cache_lock:
            if len(self._verified) >= self._cache_size:
                now = time.time()
                for key in [k for k, p in self._verified.items() if p.expires_at <= now]:
                    del self._verified[key]
                while len(self._verified) >= self._cache_size:
                    del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = principal

    def _verify(self, token: str, patient: bool) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed access token", reason="TOKEN_MALFORMED") from None
        kid = header.get("kid")
        if not isinstance(kid, str) or FORBIDDEN_HEADERS & header.keys():
            raise Unauthenticated("access token header is not acceptable", reason="TOKEN_INVALID")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise Unauthenticated("not an access token", reason="TOKEN_INVALID")
        # the token's `iat` is read only when its kid is unknown (not on every verification)
        key = self._keys.get(kid, (lambda: _issued_at(token)) if patient else None)
        if key is None or header.get("alg") != key.algorithm:
            raise Unauthenticated("access token signed by an unknown key", reason="TOKEN_INVALID")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token expired", reason="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthenticated("access token is not valid", reason="TOKEN_INVALID") from None
        if claims["iat"] > time.time() + self._leeway:
            raise Unauthenticated("access token issued in the future", reason="TOKEN_INVALID")
        kind = claims.get("kind")
        if kind not in ("user", "service") or not isinstance(claims["sub"], str):
            raise Unauthenticated("access token is not valid", reason="TOKEN_INVALID")
        return Principal(
            subject=claims["sub"],
            kind=kind,
            roles=frozenset(claims.get("roles", [])),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )


def _issued_at(token: str) -> float | None:
    """The token's unverified `iat`, only to tell a key not fetched yet from one that does not exist."""
    try:
        iat = jwt.decode(token, options={"verify_signature": False}).get("iat")
    except jwt.PyJWTError:
        return None
    return float(iat) if isinstance(iat, int | float) else None


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    """The token of the single `authorization: Bearer` entry; several entries are refused."""
    values = [v for k, v in (metadata or ()) if k == "authorization"]
    if not values:
        raise Unauthenticated("missing authorization metadata", reason="TOKEN_MISSING")
    if len(values) > 1:
        raise Unauthenticated("more than one authorization entry", reason="TOKEN_MALFORMED")
    value = values[0] if isinstance(values[0], str) else values[0].decode("latin-1")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be `Bearer <token>`", reason="TOKEN_MALFORMED")
    return token.strip()
