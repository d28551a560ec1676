"""The lean reference's access tokens: verified with PyJWT once per distinct token, then remembered."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

import jwt

from bench.refdb import Value

SETTLE_SCOPE = "transactions:settle"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]


@dataclass(frozen=True)
class Caller:
    """A verified token: the parameters its statements need."""

    subject: str
    user: str | None  # caller_user of sql.CALLER_ACTIVE
    service: str | None  # caller_service
    settler: bool  # may see and settle anyone's transactions
    expires_at: float
    claims: tuple[str, ...]  # what the account must still hold: a user's admin role, a service's scopes

    def active(self) -> dict[str, Value]:
        """The parameters of sql.CALLER_ACTIVE."""
        return {"caller_user": self.user, "caller_service": self.service, "caller_claims": list(self.claims)}

    def visible(self) -> dict[str, Value]:
        """owner (None for a settler) and the caller parameters of sql.VISIBLE."""
        return {"owner": None if self.settler else self.subject, **self.active()}


class Tokens:
    """Access tokens verified once each, with the public keys of one JWK set."""

    def __init__(self, jwks_json: str, issuer: str, audience: str) -> None:
        self._keys = {key.key_id: key for key in jwt.PyJWKSet.from_json(jwks_json).keys if key.key_id}
        self._issuer, self._audience = issuer, audience
        self._verified: dict[str, Caller] = {}

    def caller(self, metadata: object) -> Caller | None:
        token = ""
        for name, value in cast(tuple[tuple[str, str | bytes], ...], metadata or ()):
            if name == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                token = value[7:]
        known = self._verified.get(token)
        if known is not None and time.time() < known.expires_at:
            return known
        try:
            key = self._keys[str(jwt.get_unverified_header(token).get("kid"))]
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except (jwt.PyJWTError, KeyError):
            return None
        kind, subject = claims.get("kind"), str(claims["sub"])
        roles, scopes = set(claims.get("roles", [])), set(str(claims.get("scope", "")).split())
        caller = Caller(
            subject,
            subject if kind == "user" else None,
            subject if kind == "service" else None,
            "admin" in roles or SETTLE_SCOPE in scopes,
            float(claims["exp"]),
            tuple(sorted(roles & {"admin"} if kind == "user" else scopes)),
        )
        self._verified[token] = caller
        return caller
