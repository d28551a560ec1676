"""The session's tokens stay on the server and are renewed there with RefreshToken."""

from __future__ import annotations

from sqlalchemy import text

from tests.dashboard.conftest import running_dashboard


def _refresh_tokens(db_engine, user_id: str) -> tuple[int, int]:
    """(tokens issued, tokens revoked) of the user's refresh-token families."""
    with db_engine.connect() as conn:
        issued, revoked = conn.execute(
            text("SELECT count(*), count(revoked_at) FROM auth.refresh_tokens WHERE user_id = :u"),
            {"u": user_id},
        ).one()
    return int(issued), int(revoked)


def test_a_short_lived_access_token_is_renewed_on_the_server_and_logout_revokes(
    browser, start_auth, tx_address, new_user, log_in, db_engine
):
    # 30 s tokens are always within the dashboard's 30 s renewal margin: every call refreshes first
    short = start_auth(access_token_ttl_seconds=30)
    user = new_user()
    before, _ = _refresh_tokens(db_engine, user.id)
    with running_dashboard(f"127.0.0.1:{short.port}", tx_address) as dashboard:
        context = browser.new_context(base_url=dashboard.url)
        try:
            page = context.new_page()
            log_in(page, user)
            for path in ("/transactions", "/summary", "/transactions?status=PENDING"):
                assert page.goto(path).status == 200
            issued, _ = _refresh_tokens(db_engine, user.id)
            assert issued >= before + 4  # the login's token, then a rotation per page at least
            token = page.locator("input[name=csrf_token]").first.input_value()
            page.request.post("/logout", form={"csrf_token": token})
        finally:
            context.close()
    issued, revoked = _refresh_tokens(db_engine, user.id)
    assert revoked >= 1  # the family the dashboard held is revoked (RevokeToken on logout)


def test_over_tls_the_cookie_is_secure_with_the_host_prefix_and_hsts_is_sent(
    browser, auth_address, tx_address, new_user, log_in, pki
):
    user = new_user()
    tls = {
        "DASHBOARD_TLS_CERT_FILE": str(pki["server_cert"]),
        "DASHBOARD_TLS_KEY_FILE": str(pki["server_key"]),
    }
    with running_dashboard(auth_address, tx_address, ca=pki["ca"], **tls) as dashboard:
        context = browser.new_context(base_url=dashboard.url, ignore_https_errors=True)  # a test CA
        try:
            page = context.new_page()
            log_in(page, user)
            response = page.goto("/transactions")
            assert response.headers["strict-transport-security"].startswith("max-age=")
            (cookie,) = context.cookies()
            assert cookie["name"] == "__Host-dashboard" and cookie["secure"] is True
            assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        finally:
            context.close()
