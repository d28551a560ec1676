"""What a browser is told and what it holds: CSP, cookies, CSRF, and no token in reach of scripts."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from playwright.sync_api import expect

from dashboard.security import CONTENT_SECURITY_POLICY
from payments.transaction.v1 import transaction_pb2 as pb

PAGES = ["/transactions", "/summary", "/transactions?status=PENDING"]


def test_every_page_sends_a_strict_csp_and_has_no_inline_script_or_style(
    page, log_in, alice, create, context
):
    tx = create(alice, 1250, "EUR", "<script>alert(1)</script>")
    log_in(page, alice)
    for path in [*PAGES, f"/transactions/{tx.id}", "/transactions/00000000-0000-0000-0000-000000000000"]:
        response = page.goto(path)
        csp = response.headers["content-security-policy"]
        assert csp == CONTENT_SECURITY_POLICY
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        html = response.text()
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
        assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
        assert "<style" not in html and not re.search(r"\sstyle=", html)
        assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers either
    # the description was escaped, not run; and nothing the page did was refused by the CSP
    page.goto(f"/transactions/{tx.id}")
    expect(page.locator(".facts")).to_contain_text("<script>alert(1)</script>")
    assert not [p for p in context.problems if "Content Security Policy" in p], context.problems


def test_the_session_cookie_is_httponly_samesite_and_only_a_reference(page, log_in, alice, context):
    log_in(page, alice)
    (cookie,) = [c for c in context.cookies() if c["name"] == "dashboard_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["secure"] is False  # plaintext here; Secure (and the __Host- name) when served over TLS
    assert alice.access_token not in cookie["value"] and "eyJ" not in cookie["value"]  # no JWT inside
    assert len(cookie["value"]) < 100
    assert page.evaluate("document.cookie") == ""  # nothing for scripts to read
    html = page.content()
    assert "eyJ" not in html and "Bearer" not in html  # no token in the page either
    storage = page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    assert "eyJ" not in storage


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(page, log_in, alice, create, tx_stub):
    tx = create(alice, 800, "EUR", "keep me")
    log_in(page, alice)
    page.goto(f"/transactions/{tx.id}")
    forged = page.request.post(f"/transactions/{tx.id}/cancel", form={"etag": tx.etag}, max_redirects=0)
    assert forged.status == 403
    assert "refused" in forged.text()
    wrong = page.request.post(
        f"/transactions/{tx.id}/cancel", form={"etag": tx.etag, "csrf_token": "x" * 43}, max_redirects=0
    )
    assert wrong.status == 403
    still = tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx.id), metadata=alice.md).transaction
    assert still.status == pb.TRANSACTION_STATUS_PENDING


def test_a_forged_form_from_another_site_is_refused(page, log_in, alice, create, dashboard, tx_stub):
    tx = create(alice, 800, "EUR", "keep me too")
    log_in(page, alice)
    page.goto(f"/transactions/{tx.id}")
    token = page.locator("input[name=csrf_token]").first.input_value()
    evil = page.request.post(
        f"/transactions/{tx.id}/cancel",
        form={"etag": tx.etag, "csrf_token": token},
        headers={"Origin": "https://evil.example"},
        max_redirects=0,
    )
    assert evil.status == 403
    still = tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx.id), metadata=alice.md).transaction
    assert still.status == pb.TRANSACTION_STATUS_PENDING


def test_htmx_requests_carry_the_csrf_token_in_a_header(page, log_in, alice, create):
    tx = create(alice, 800, "EUR", "via htmx")
    log_in(page, alice)
    page.goto(f"/transactions/{tx.id}")
    with page.expect_request(f"**/transactions/{tx.id}/cancel") as sent:
        page.get_by_role("button", name="Cancel this payment").click()
    token = page.locator("input[name=csrf_token]").first.input_value()
    assert sent.value.headers.get("x-csrf-token") == token and sent.value.headers.get("hx-request") == "true"


def test_the_login_form_needs_its_own_token(dashboard, alice):
    body = f"email={alice.email}&password={alice.password}".encode()
    request = urllib.request.Request(f"{dashboard.url}/login", data=body, method="POST")  # noqa: S310
    try:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
        raise AssertionError("a login without the form's token was accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 403


def test_pages_need_a_session_and_the_next_address_stays_on_this_site(page):
    page.goto("/transactions?status=PENDING")
    assert re.search(r"/login\?next=/transactions", page.url)
    page.goto("/login?next=//evil.example/x")
    assert page.locator("input[name=next]").input_value() == "/transactions"


def test_an_htmx_form_with_a_stale_token_is_refused_in_words_on_the_page(page, log_in, alice, create):
    tx = create(alice, 800, "EUR", "stale token")
    log_in(page, alice)
    page.goto(f"/transactions/{tx.id}")
    page.evaluate(
        """() => {
            document.body.setAttribute("hx-headers", JSON.stringify({"X-CSRF-Token": "stale"}));
            document.querySelectorAll("input[name=csrf_token]").forEach((i) => { i.value = "stale"; });
        }"""
    )
    page.get_by_role("button", name="Cancel this payment").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("This form was refused")


def test_a_click_after_the_session_ended_elsewhere_goes_to_the_login_page(page, log_in, alice, create):
    tx = create(alice, 800, "EUR", "logged out meanwhile")
    log_in(page, alice)
    page.goto(f"/transactions/{tx.id}")
    token = page.locator("input[name=csrf_token]").first.input_value()
    assert page.request.post("/logout", form={"csrf_token": token}, max_redirects=0).status == 303
    page.get_by_role("button", name="Cancel this payment").click()
    page.wait_for_url(re.compile(r"/login\?next=/transactions$"))
