"""Every statement the auth service runs, as the text PostgreSQL sees (named, cast parameters)."""

from __future__ import annotations

USER_VIEW_COLUMNS = "id, email, full_name, roles, created_at"

# A taken email inserts nothing and returns nothing (the unique index decides, also under races).
INSERT_USER = f"""
INSERT INTO auth.users (id, email, full_name, password_hash, roles)
VALUES (gen_random_uuid(), %(email)s::text, %(full_name)s::text, %(password_hash)s::text, %(roles)s::text[])
ON CONFLICT (email) DO NOTHING
RETURNING {USER_VIEW_COLUMNS}
"""

USER_FOR_LOGIN = "SELECT id, password_hash, roles, disabled FROM auth.users WHERE email = %(email)s::text"

ACTIVE_USER = f"SELECT {USER_VIEW_COLUMNS} FROM auth.users WHERE id = %(id)s::uuid AND NOT disabled"

UPDATE_PASSWORD_HASH = "UPDATE auth.users SET password_hash = %(password_hash)s::text WHERE id = %(id)s::uuid"

SERVICE_PRINCIPAL_FOR_LOGIN = """
SELECT id, secret_hash, scopes, disabled FROM auth.service_principals WHERE client_id = %(client_id)s::text
"""

INSERT_SERVICE_PRINCIPAL = """
INSERT INTO auth.service_principals (id, client_id, name, secret_hash, scopes)
VALUES (gen_random_uuid(), %(client_id)s::text, %(name)s::text, %(secret_hash)s::text, %(scopes)s::text[])
"""

# Refresh tokens are stored as SHA-256 hashes only.
INSERT_REFRESH_TOKEN = """
INSERT INTO auth.refresh_tokens (id, family_id, user_id, token_hash, expires_at)
VALUES (gen_random_uuid(), %(family_id)s::uuid, %(user_id)s::uuid, %(token_hash)s::bytea,
        now() + make_interval(secs => %(ttl)s::int))
"""

# Single use: the row is locked while it is spent, so two concurrent refreshes cannot both win.
LOCK_REFRESH_TOKEN = """
SELECT id, family_id, user_id, used_at, revoked_at, expires_at <= now() AS expired
FROM auth.refresh_tokens WHERE token_hash = %(token_hash)s::bytea
FOR UPDATE
"""

SPEND_REFRESH_TOKEN = "UPDATE auth.refresh_tokens SET used_at = now() WHERE id = %(id)s::uuid"

FAMILY_OF_REFRESH_TOKEN = "SELECT family_id FROM auth.refresh_tokens WHERE token_hash = %(token_hash)s::bytea"

REVOKE_FAMILY = """
UPDATE auth.refresh_tokens SET revoked_at = now() WHERE family_id = %(family_id)s::uuid AND revoked_at IS NULL
"""

# Brute-force counters, shared by every replica. An attempt is counted (reserved) before its
# password is hashed, atomically per key, so concurrent guesses cannot overtake the limit. A key
# that is blocked stays as it is; a window that has passed starts again at 1. Keys are sorted by
# the caller, so concurrent reservations lock their rows in one order.
_WINDOW_PASSED = "t.window_started_at < now() - make_interval(secs => %(window)s::int)"
RESERVE_ATTEMPTS = f"""
INSERT INTO auth.login_throttle AS t (key, failures, window_started_at)
SELECT key, 1, now() FROM unnest(%(keys)s::text[]) AS key
ON CONFLICT (key) DO UPDATE SET
  failures = CASE WHEN t.blocked_until > now() THEN t.failures
                  WHEN {_WINDOW_PASSED} THEN 1 ELSE t.failures + 1 END,
  window_started_at = CASE WHEN t.blocked_until > now() OR NOT {_WINDOW_PASSED}
                           THEN t.window_started_at ELSE now() END,
  blocked_until = CASE WHEN t.blocked_until > now() OR NOT {_WINDOW_PASSED}
                       THEN t.blocked_until END
RETURNING key, failures, blocked_until, coalesce(blocked_until > now(), false) AS blocked,
          blocked_until IS NOT NULL AS was_locked_out
"""

# A lockout never shortens one already running.
BLOCK = """
UPDATE auth.login_throttle
SET blocked_until = greatest(blocked_until, now() + make_interval(secs => %(secs)s::double precision))
WHERE key = %(key)s::text
"""

# After a success: the identity's counters are forgotten, the peer's attempt is given back.
FORGET_KEYS = "DELETE FROM auth.login_throttle WHERE key = ANY (%(keys)s::text[])"
GIVE_BACK_ATTEMPT = """
UPDATE auth.login_throttle
SET failures = greatest(failures - 1, 0),
    blocked_until = CASE WHEN key = ANY (%(unblock)s::text[]) THEN NULL ELSE blocked_until END
WHERE key = ANY (%(keys)s::text[])
"""

# Signing keys: rotations serialise on one advisory lock.
LOCK_SIGNING_KEYS = "SELECT pg_advisory_xact_lock(hashtext('auth.signing_keys'))"

ACTIVE_KEY_OF_ALGORITHM = """
SELECT kid FROM auth.signing_keys WHERE retired_at IS NULL AND algorithm = %(algorithm)s::text
"""

RETIRE_SIGNING_KEYS = "UPDATE auth.signing_keys SET retired_at = now() WHERE retired_at IS NULL"

INSERT_SIGNING_KEY = """
INSERT INTO auth.signing_keys (kid, algorithm, private_key_pem, public_jwk)
VALUES (%(kid)s::text, %(algorithm)s::text, %(private_key_pem)s::text, %(public_jwk)s::jsonb)
"""

# The active key and every key retired after `horizon` (its tokens may still be unexpired).
PUBLISHED_SIGNING_KEYS = """
SELECT kid, algorithm, private_key_pem, public_jwk, retired_at FROM auth.signing_keys
WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => %(horizon)s::int)
ORDER BY created_at DESC
"""
