"""The main screens render for a person: screenshots of each (into DASHBOARD_SCREENSHOTS when set).

`DASHBOARD_SCREENSHOTS=dashboard/docs .venv/bin/pytest tests/dashboard/test_screens.py` refreshes
the pictures in the README; otherwise they go to a temporary folder and are only checked to exist.
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect

from payments.transaction.v1 import transaction_pb2 as pb
from tests.servers import ROOT


def test_screenshots_of_the_main_screens(browser, dashboard, log_in, new_user, create, settle, tmp_path):
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    folder = folder if folder.is_absolute() else ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    user = new_user()
    for amount, currency, text, status in [
        (1999, "EUR", "Annual plan", pb.TRANSACTION_STATUS_COMPLETED),
        (500, "JPY", "Matcha", pb.TRANSACTION_STATUS_COMPLETED),
        (2450, "USD", "Conference ticket", pb.TRANSACTION_STATUS_FAILED),
        (1250, "EUR", "Coffee beans", None),
    ]:
        tx = create(user, amount, currency, text)
        if status is not None:
            settle(tx.id, status)
    payment = create(user, 12000, "EUR", "Standing desk")
    settle(payment.id)
    context = browser.new_context(base_url=dashboard.url, viewport={"width": 1280, "height": 760})
    try:
        page = context.new_page()
        page.goto("/login")
        page.screenshot(path=folder / "login.png")
        log_in(page, user, via_form=True)
        expect(page.locator("#live-status")).to_have_text("Live updates are on.", timeout=10_000)
        create(user, 3400, "GBP", "Arrived live")
        expect(page.locator("#activity li").filter(has_text="£34.00")).to_be_visible(timeout=10_000)
        page.screenshot(path=folder / "list.png", full_page=True)
        page.goto(f"/transactions/{payment.id}")
        page.get_by_label("Amount to refund, in EUR").fill("45.00")
        page.get_by_role("button", name="Refund this amount").click()
        expect(page.locator("#remaining")).to_have_text("€75.00")
        page.get_by_label("Amount to refund, in EUR").fill("80")
        page.get_by_role("button", name="Refund this amount").click()
        expect(page.get_by_role("alert")).to_be_visible()
        page.screenshot(path=folder / "detail.png", full_page=True)
        page.goto("/summary")
        page.screenshot(path=folder / "summary.png", full_page=True)
    finally:
        context.close()
    for name in ("login", "list", "detail", "summary"):
        assert (folder / f"{name}.png").stat().st_size > 10_000
