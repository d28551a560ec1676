"""Who may see and change which transactions. Pure: decided from the verified principal only.

- A user sees and cancels only their own transactions; anything else is
  NOT_FOUND, exactly like a missing id.
- Settling (COMPLETED, FAILED) needs the `transactions:settle` scope, which
  admins hold implicitly. Without it the request is PERMISSION_DENIED before
  any lookup, for every id alike, so the answer reveals nothing.
- A settler (service principal with the scope, or an admin) may read and
  change any user's transaction: it must read what it settles.
- Only admins may list another user's transactions.
- A user watches the changes of their own transactions only; the `transactions:watch` scope (a
  service principal; admins hold it implicitly) watches every user's, or one user's. A service
  principal without it is PERMISSION_DENIED whatever it asks.
"""

from __future__ import annotations

from uuid import UUID

from payments_common.errors import PermissionDenied, Unauthenticated
from payments_common.tokens import SCOPE_SETTLE, SCOPE_WATCH, Principal
from transaction_service.domain import SETTLEMENTS, Status


def caller_id(principal: Principal) -> UUID:
    """The caller's id; tokens of this system always name a UUID subject."""
    try:
        return UUID(principal.subject)
    except ValueError:
        raise Unauthenticated("access token subject is not an account id", reason="TOKEN_INVALID") from None


def account_owner(principal: Principal) -> UUID:
    """The user who will own a new transaction; service principals own none."""
    if principal.kind != "user":
        raise PermissionDenied("only user accounts own transactions", reason="USER_ACCOUNT_REQUIRED")
    return caller_id(principal)


def owner_scope(principal: Principal) -> UUID | None:
    """The only owner whose transactions the caller may see or change (None: any owner)."""
    return None if principal.can(SCOPE_SETTLE) else caller_id(principal)


def authorize_target(principal: Principal, target: Status) -> None:
    """Settling needs the settle scope; cancelling is for the owner (or a settler)."""
    if target in SETTLEMENTS and not principal.can(SCOPE_SETTLE):
        raise PermissionDenied(
            f"setting {target.value} needs the {SCOPE_SETTLE} scope or the admin role",
            reason="SETTLE_SCOPE_REQUIRED",
        )


def list_owner(principal: Principal, requested: UUID | None) -> UUID:
    """Whose transactions a listing shows: the caller's own unless an admin names another user."""
    own = caller_id(principal)
    if requested is None or requested == own:
        return own
    if not principal.is_admin:
        raise PermissionDenied("only admins may list another user's transactions", reason="ADMIN_REQUIRED")
    return requested


def watch_owner(principal: Principal, requested: UUID | None) -> UUID | None:
    """Whose changes a watch shows: one user's, or every user's (None)."""
    if principal.can(SCOPE_WATCH):
        return requested
    if principal.kind != "user":
        raise PermissionDenied(
            f"watching transactions needs the {SCOPE_WATCH} scope", reason="WATCH_SCOPE_REQUIRED"
        )
    own = caller_id(principal)
    if requested is None or requested == own:
        return own
    raise PermissionDenied(
        f"watching another user's transactions needs the {SCOPE_WATCH} scope or the admin role",
        reason="WATCH_SCOPE_REQUIRED",
    )
