"""The web page in headless Debian chromium (Playwright), through the real gateway and the whole saga."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.e2e.conftest import System

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FINAL_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does)"
)

# Records every text the status region shows, so a test can tell what the page went through.
RECORD_STATUS = """
window.__statuses = [];
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("status");
  new MutationObserver(() => window.__statuses.push(box.dataset.state || ""))
    .observe(box, { childList: true, subtree: true, characterData: true, attributes: true });
});
"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, system: System) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=system.url, viewport={"width": 1000, "height": 900})
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "400" not in message.text:  # a 400 answer is logged by chromium itself
            problems.append(f"console: {message.text}")

    opened.on("console", on_console)
    await opened.add_init_script(RECORD_STATUS)
    reply = await opened.goto("/")
    assert reply is not None
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    try:
        yield opened
    finally:
        await context.close()
    assert problems == []


def customer() -> str:
    return f"web-{uuid.uuid4().hex[:8]}"


async def place(page: Page, who: str, payment: str, quantity: str = "2", price: str = "12.50") -> None:
    await page.get_by_label("Customer").fill(who)
    await page.get_by_label("Quantity (item 1)").fill(quantity)
    await page.get_by_label("Unit price (item 1)").fill(price)
    await page.get_by_label("Payment method").select_option(payment)
    await page.get_by_role("button", name="Place order").click()


async def test_a_visa_order_becomes_paid_live(page: Page) -> None:
    watches: list[str] = []
    page.on("request", lambda request: watches.append(request.url) if request.url.endswith(":watch") else None)
    await place(page, customer(), "pm_card_visa")

    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "CREATED")
    await expect(status).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)
    await expect(status).to_contain_text("PAID")
    order_id = await status.get_attribute("data-order-id")
    assert order_id
    assert watches == [f"{page.url.rstrip('/')}/v1/orders/{order_id}:watch"]
    seen = await page.evaluate("window.__statuses")
    assert seen.index("CREATED") < seen.index("PAID"), seen  # it changed on screen, without a reload

    row = page.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(row).to_have_attribute("data-state", "PAID")
    await expect(row).to_contain_text("25.00 USD")


async def test_a_declined_order_becomes_cancelled_with_its_reason(page: Page) -> None:
    who = customer()
    await place(page, who, "pm_card_visa", quantity="1", price="8.99")
    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)

    await page.get_by_label("SKU (item 1)").fill("SKU-7")
    await page.get_by_role("button", name="Add item").click()
    await page.get_by_label("SKU (item 2)").fill("SKU-9")
    await page.get_by_label("Unit price (item 2)").fill("0.99")
    await place(page, who, "pm_card_declined", quantity="3", price="4.00")
    await expect(status).to_have_attribute("data-state", "CANCELLED", timeout=FINAL_TIMEOUT_MS)
    await expect(status).to_contain_text("payment failed: Your card was declined.")

    rows = page.locator("#orders tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_have_attribute("data-state", "CANCELLED")  # newest first
    await expect(rows.nth(0)).to_contain_text("payment failed: Your card was declined.")
    await expect(rows.nth(0)).to_contain_text("12.99 USD")
    await expect(rows.nth(1)).to_have_attribute("data-state", "PAID")

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)


async def test_invalid_input_shows_the_apis_field_errors_next_to_the_fields(page: Page) -> None:
    async with page.expect_response(lambda r: r.url.endswith("/v1/orders") and r.request.method == "POST") as answer:
        await place(page, "", "pm_card_visa", quantity="0")
    reply = await answer.value
    assert reply.status == 400
    body = await reply.json()
    assert {v["field"] for d in body["details"] for v in d.get("fieldViolations", [])} == {
        "order.customer_id",
        "order.line_items[0].quantity",
    }

    customer_field = page.get_by_label("Customer")
    quantity_field = page.get_by_label("Quantity (item 1)")
    await expect(customer_field).to_have_attribute("aria-invalid", "true")
    await expect(quantity_field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#customer-error")).to_have_text("is required")
    await expect(page.locator("#item-0-quantity-error")).to_have_text("must be between 1 and 1000")
    await expect(page.get_by_role("alert").first).to_have_text("Please correct 2 fields.")
    await expect(customer_field).to_be_focused()
    await expect(page.get_by_role("status")).not_to_have_attribute("data-state", "CREATED")

    # A price the page cannot even send is caught before the API, also next to its field.
    await page.get_by_label("Unit price (item 1)").fill("twelve")
    await page.get_by_role("button", name="Place order").click()
    await expect(page.locator("#item-0-price-error")).to_have_text("enter a price like 12.50")

    # Corrected, the same form goes through and the errors are gone.
    await place(page, customer(), "pm_card_visa", quantity="1", price="1.00")
    await expect(page.get_by_role("status")).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)
    await expect(page.locator("[aria-invalid]")).to_have_count(0)
    await expect(page.locator("#customer-error")).to_be_empty()
