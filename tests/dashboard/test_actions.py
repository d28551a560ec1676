"""Cancel and refund in a real Chromium: the service decides, the page says what happened in words."""

from __future__ import annotations

from playwright.sync_api import expect

from payments.transaction.v1 import transaction_pb2 as pb


def _status(tx_stub, caller, tx_id):
    return tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx_id), metadata=caller.md).transaction


def test_cancelling_a_pending_payment_updates_status_and_timeline(page, log_in, alice, create, tx_stub):
    tx = create(alice, 800, "EUR", "to cancel")
    log_in(page, alice)
    page.goto(f"/transactions/{tx.id}")
    page.get_by_role("button", name="Cancel this payment").click()
    expect(page.get_by_role("status").filter(has_text="cancelled")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Cancelled")
    expect(page.locator("#timeline li").last).to_contain_text("Pending → cancelled")
    expect(page.get_by_role("button", name="Cancel this payment")).to_have_count(0)
    assert _status(tx_stub, alice, tx.id).status == pb.TRANSACTION_STATUS_CANCELLED


def test_a_cancel_of_a_payment_settled_meanwhile_is_refused_in_words(page, log_in, alice, create, settle):
    tx = create(alice, 800, "EUR", "settled behind the page")
    log_in(page, alice)
    page.goto(f"/transactions/{tx.id}")
    settle(tx.id)  # another client settles it while the page is open (its etag is now stale)
    page.get_by_role("button", name="Cancel this payment").click()
    expect(page.get_by_role("alert")).to_contain_text("changed since you opened it")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Completed")


def test_a_partial_refund_then_one_over_the_remaining_amount_is_refused_in_words(
    page, log_in, alice, create, settle, tx_stub
):
    payment = create(alice, 1000, "EUR", "ten euros")
    settle(payment.id)
    log_in(page, alice)
    page.goto(f"/transactions/{payment.id}")
    page.get_by_label("Amount to refund, in EUR").fill("4.00")
    page.get_by_role("button", name="Refund this amount").click()
    expect(page.get_by_role("status").filter(has_text="refund of €4.00 was recorded")).to_be_visible()
    expect(page.locator("#refunded")).to_have_text("€4.00")
    expect(page.locator("#remaining")).to_have_text("€6.00")
    expect(page.locator("#timeline li")).to_have_count(2)  # created, completed: a refund is its own record
    assert _status(tx_stub, alice, payment.id).refunded_minor == 400

    page.get_by_label("Amount to refund, in EUR").fill("7.00")
    page.get_by_role("button", name="Refund this amount").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("more than what is left to refund")
    expect(alert).to_contain_text("At most €6.00 can still be refunded")
    assert _status(tx_stub, alice, payment.id).refunded_minor == 400


def test_a_full_refund_gives_back_all_that_is_left(page, log_in, alice, create, settle, tx_stub):
    payment = create(alice, 500, "JPY", "yen")
    settle(payment.id)
    log_in(page, alice)
    page.goto(f"/transactions/{payment.id}")
    page.get_by_role("button", name="Refund all that is left (¥500)").click()
    expect(page.get_by_role("status").filter(has_text="refund of ¥500 was recorded")).to_be_visible()
    expect(page.locator("#remaining")).to_have_text("¥0")
    expect(page.get_by_role("button", name="Refund this amount")).to_have_count(0)
    assert _status(tx_stub, alice, payment.id).refunded_minor == 500


def test_a_malformed_amount_is_explained_before_the_service_is_asked(page, log_in, alice, create, settle):
    payment = create(alice, 500, "JPY", "yen")
    settle(payment.id)
    log_in(page, alice)
    page.goto(f"/transactions/{payment.id}")
    page.get_by_label("Amount to refund, in JPY").fill("1.5")
    page.get_by_role("button", name="Refund this amount").click()
    expect(page.get_by_role("alert")).to_contain_text("JPY has no minor unit: enter a whole number")


def test_writes_work_without_javascript_too(browser, dashboard, log_in, alice, create, tx_stub):
    context = browser.new_context(base_url=dashboard.url, java_script_enabled=False)
    try:
        page = context.new_page()
        tx = create(alice, 800, "EUR", "no script")
        log_in(page, alice)
        page.goto(f"/transactions/{tx.id}")
        page.get_by_role("button", name="Cancel this payment").click()
        expect(page.get_by_role("status").filter(has_text="cancelled")).to_be_visible()
        assert _status(tx_stub, alice, tx.id).status == pb.TRANSACTION_STATUS_CANCELLED
    finally:
        context.close()
