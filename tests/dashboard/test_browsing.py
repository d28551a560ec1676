"""Browsing in a real Chromium: log in, the list (money, filters, pages), one transaction, admins."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from tests.dashboard.conftest import PAGE_SIZE


def test_logging_in_shows_ones_own_transactions_newest_first_with_money_by_exponent(
    page, log_in, alice, bob, create
):
    create(bob, 999, "EUR", "not alice's")
    create(alice, 500, "JPY", "ramen")
    create(alice, 1250, "EUR", "coffee")
    log_in(page, alice, via_form=True)
    rows = page.locator("#tx-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("€12.50")
    expect(rows.nth(0)).to_contain_text("coffee")
    expect(rows.nth(1)).to_contain_text("¥500")
    expect(page.locator("#tx-rows")).not_to_contain_text("not alice's")


def test_filters_narrow_the_list_without_a_reload(page, log_in, alice, create, settle):
    settle(create(alice, 700, "USD", "settled dollars").id)
    create(alice, 300, "USD", "pending dollars")
    create(alice, 4000, "GBP", "pounds")
    log_in(page, alice)
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Currency").fill("usd")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#tx-rows tr")).to_have_count(2)
    expect(page.locator("#tx-rows")).not_to_contain_text("pounds")
    page.get_by_label("Status").select_option("COMPLETED")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#tx-rows tr")).to_have_count(1)
    expect(page.locator("#tx-rows")).to_contain_text("$7.00")
    assert page.evaluate("window.__sameDocument") is True  # htmx swapped the results in place
    assert re.search(r"currency=USD", page.url) and "status=COMPLETED" in page.url  # a link to share


def test_dates_bound_the_list_and_a_bad_filter_is_explained(page, log_in, alice, create):
    create(alice, 100, "EUR", "today")
    log_in(page, alice)
    page.goto("/transactions?from=2001-01-01&to=2001-01-31")
    expect(page.locator("#no-rows")).to_be_visible()
    page.goto("/transactions?to=2999-12-31&currency=euro")
    expect(page.get_by_role("alert")).to_contain_text("Currency: enter a three-letter code")
    expect(page.locator("#tx-rows")).to_contain_text("today")


def test_keyset_pages_follow_the_service_page_tokens(page, log_in, alice, create):
    names = [f"order {n}" for n in range(PAGE_SIZE + 2)]
    for name in names:
        create(alice, 100, "EUR", name)
    log_in(page, alice)
    first = page.locator("#tx-rows tr td:last-child").all_inner_texts()
    assert first == list(reversed(names))[:PAGE_SIZE]
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("#tx-rows tr")).to_have_count(2)
    second = page.locator("#tx-rows tr td:last-child").all_inner_texts()
    assert second == list(reversed(names))[PAGE_SIZE:]
    assert "page_token=" in page.url
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="First page").click()
    expect(page.locator("#tx-rows tr").first).to_contain_text(names[-1])


def test_a_tampered_page_token_goes_back_to_the_first_page(page, log_in, alice, create):
    create(alice, 100, "EUR", "only one")
    log_in(page, alice)
    page.goto("/transactions?page_token=forged")
    expect(page.get_by_role("alert")).to_contain_text("first page")
    expect(page.locator("#tx-rows")).to_contain_text("only one")


def test_a_transaction_shows_its_details_and_event_timeline(page, log_in, alice, create, settle):
    tx = create(alice, 1250, "EUR", "coffee beans")
    settle(tx.id)
    log_in(page, alice)
    page.get_by_role("link", name=re.compile(r"UTC")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Payment of €12.50")
    steps = page.locator("#timeline li")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("Created as pending")
    expect(steps.nth(0)).to_contain_text("by you")
    expect(steps.nth(1)).to_contain_text("Pending → completed")
    expect(steps.nth(1)).to_contain_text("settled by test")


def test_a_declined_card_payment_shows_the_processors_reason(page, log_in, alice, tx_stub, worker):
    from tests.processing.harness import create_payment, settled

    tx = settled(tx_stub, alice, create_payment(tx_stub, alice, "pm_card_insufficient_funds", amount=990).id)
    log_in(page, alice)
    page.goto(f"{page.url.split('/transactions')[0]}/transactions/{tx.id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Failed")
    expect(page.locator("#failure-code")).to_have_text("insufficient_funds")
    steps = page.locator("#timeline li")
    expect(steps).to_have_count(3)  # created, submitted to the processor, failed
    expect(steps.nth(1)).to_contain_text("rocessing")


def test_another_users_transaction_gives_the_same_not_found_page_as_a_missing_one(
    page, log_in, alice, bob, create
):
    theirs = create(bob, 5000, "EUR", "bob's secret")
    log_in(page, alice)
    answers = []
    for path in (f"/transactions/{theirs.id}", f"/transactions/{uuid.uuid4()}", "/transactions/not-an-id"):
        response = page.goto(path)
        answers.append((response.status, response.body(), page.content()))
    (status, body, html), *others = answers
    assert status == 404 and all(other == (status, body, html) for other in others)  # byte for byte
    assert "bob's secret" not in html and "€50.00" not in html
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")


def test_an_admin_sees_any_users_transactions_by_user_id(page, log_in, admin_user, bob, create):
    create(bob, 2500, "EUR", "bob's groceries")
    log_in(page, admin_user)
    page.get_by_label(re.compile("User id")).fill(bob.id)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#tx-rows")).to_contain_text("bob's groceries")
    expect(page.locator("#results")).to_contain_text(f"Transactions of user {bob.id}")
    page.locator("#tx-rows a").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("€25.00")
    expect(page.locator(".facts")).to_contain_text(bob.id)


def test_a_user_cannot_pick_another_user(page, log_in, alice, bob, create):
    create(bob, 2500, "EUR", "bob's groceries")
    log_in(page, alice)
    expect(page.get_by_label(re.compile("User id"))).to_have_count(0)
    page.goto(f"/transactions?user={bob.id}")  # ignored for a user: still alice's own list
    expect(page.locator("#tx-rows")).not_to_contain_text("bob's groceries")


def test_the_summary_charts_volume_and_counts_per_status_per_currency(page, log_in, alice, create, settle):
    settle(create(alice, 1000, "EUR").id)
    settle(create(alice, 2000, "EUR").id)
    create(alice, 500, "JPY")
    log_in(page, alice)
    page.get_by_role("link", name="Summary").click()
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    expect(chart).to_contain_text("€30.00 · 2 payments")
    expect(chart).to_contain_text("¥500 · 1 payment")
    assert chart.locator("rect.bar-payment").count() >= 2
    expect(page.locator("table.summary")).to_contain_text("Completed")


def test_logging_out_ends_the_session_on_the_server(page, log_in, alice, context):
    log_in(page, alice, via_form=True)
    cookies = context.cookies()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    context.add_cookies(cookies)  # the old reference, replayed
    page.goto("/transactions")
    assert "/login" in page.url


def test_a_wrong_password_is_refused_in_words(page, alice):
    page.goto("/login")
    page.get_by_label("Email").fill(alice.email)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("The email or password is not right.")
