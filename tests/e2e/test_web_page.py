"""The web page in headless Debian chromium (Playwright), through the real gateway and the whole saga.

Every test but the sign-in ones starts signed in: through the development identity provider's own
login form (a subject typed in, "Authorize"), the authorization-code flow with PKCE as a person
would go through it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from payments.v1 import payments_pb2, payments_pb2_grpc
from playwright.async_api import Browser, ConsoleMessage, Page, Request, Route, ViewportSize, async_playwright, expect

from devstack.gateway import REDOC
from devstack.stack import wait_for
from tests.e2e.conftest import System

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    # Nothing leaves this machine: every host name but the loopback fails to resolve, locally.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# The provider's login page links a stylesheet on a CDN: answered here, empty, so no request leaves.
NOT_LOCAL = re.compile(r"^(?!https?://127\.0\.0\.1[:/])")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FINAL_TIMEOUT_MS = 30_000
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does)"
)

# Records every text the status region shows, so a test can tell what the page went through.
RECORD_STATUS = """
window.__statuses = [];
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("status");
  if (!box) return; // the identity provider's login page
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


async def offline(route: Route) -> None:
    if route.request.resource_type == "stylesheet":
        await route.fulfill(status=200, content_type="text/css", body="")
    else:
        await route.abort()


def customer() -> str:
    return f"web-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def who() -> str:
    """The customer the ``page`` fixture signs in as."""
    return customer()


@pytest.fixture
async def signed_out(browser: Browser, system: System) -> AsyncIterator[Page]:
    """The page, just opened: nobody signed in yet."""
    context = await browser.new_context(base_url=system.url, viewport={"width": 1000, "height": 900})
    await context.route(NOT_LOCAL, offline)
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        # chromium itself logs a 400 (bad input), 401 (a refused token) or 404 (unknown order in the URL,
        # the provider's missing favicon) answer the test asked for
        if message.type == "error" and not any(f"status of {code}" in message.text for code in (400, 401, 404)):
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


async def sign_in(page: Page, who: str) -> None:
    """Sign in as a person would: "Sign in", the provider's login form, back on the page signed in."""
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_placeholder("sub").fill(who)  # the development provider's form takes any subject
    await page.get_by_role("button", name="Authorize").click()
    await expect(page.locator("#account")).to_contain_text(f"Signed in as {who}")


@pytest.fixture
async def page(signed_out: Page, who: str) -> Page:
    """The page, signed in as ``who``."""
    await sign_in(signed_out, who)
    return signed_out


async def place(page: Page, payment: str, quantity: str = "2", price: str = "12.50") -> None:
    await page.get_by_label("Quantity (item 1)").fill(quantity)
    await page.get_by_label("Unit price (item 1)").fill(price)
    await page.get_by_label("Payment method").select_option(payment)
    await page.get_by_role("button", name="Place order").click()


def order_posts(page: Page) -> list[Request]:
    """Every POST /v1/orders the page sends from now on."""
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" and r.url.endswith("/v1/orders") else None)
    return sent


async def timeline_kinds(page: Page) -> list[str]:
    kinds = await page.locator("#timeline li").evaluate_all("(items) => items.map((li) => li.dataset.kind)")
    return [str(kind) for kind in kinds]


async def no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px: it scrolls sideways"


async def test_sign_in_at_the_provider_then_a_visa_order_becomes_paid_live(
    signed_out: Page, system: System, who: str
) -> None:
    page = signed_out
    # Signed out: the form says why it cannot be used, and the API is not called.
    account = page.locator("#account")
    await expect(account).to_contain_text("Not signed in.")
    await expect(page.locator("#signin-note")).to_contain_text("Sign in to place an order")
    await expect(page.get_by_role("button", name="Place order")).to_be_disabled()
    await expect(page.locator("#orders-note")).to_have_text("Sign in to see your orders.")

    # "Sign in" goes to the provider with the authorization-code flow and PKCE …
    async with page.expect_request(lambda r: "/oauth2/authorize?" in r.url) as sent:
        await page.get_by_role("button", name="Sign in").click()
    asked = dict(re.findall(r"[?&]([^=&]+)=([^&]*)", (await sent.value).url))
    assert (await sent.value).url.startswith(f"{system.stack.identity.issuer}/oauth2/authorize?")
    assert (asked["response_type"], asked["client_id"], asked["scope"]) == ("code", "order-saga", "openid")
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43  # base64url of a SHA-256
    assert asked["state"]
    assert asked["redirect_uri"] == f"{system.url}/".replace(":", "%3A").replace("/", "%2F")

    # … whose own login form signs the customer in; back on the page, the code becomes a token.
    await page.get_by_placeholder("sub").fill(who)
    async with page.expect_response(lambda r: r.url == f"{system.url}/oauth2/token") as exchanged:
        await page.get_by_role("button", name="Authorize").click()
    assert (await exchanged.value).status == 200
    await expect(account).to_contain_text(f"Signed in as {who}")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page).to_have_url(f"{system.url}/")  # the code and the state are gone from the address
    await expect(page.get_by_label("Customer")).to_have_value(who)
    assert await page.get_by_label("Customer").get_attribute("readonly") is not None
    await expect(page.locator("#signin-note")).to_be_hidden()
    token = await page.evaluate("sessionStorage.getItem('orders.auth.token')")
    assert isinstance(token, str)
    assert token.count(".") == 2  # a JWT

    # Every API call carries the token; the live watch too (a fetch of the event stream, not EventSource).
    watches: list[Request] = []
    page.on("request", lambda request: watches.append(request) if request.url.endswith(":watch") else None)
    async with page.expect_request(lambda r: r.url.endswith("/v1/orders") and r.method == "POST") as posted:
        await place(page, "pm_card_visa")
    assert (await posted.value).headers["authorization"] == f"Bearer {token}"

    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "CREATED")
    await expect(status).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)
    await expect(status).to_contain_text("PAID")
    order_id = await status.get_attribute("data-order-id")
    assert order_id
    assert [r.url for r in watches] == [f"{system.url}/v1/orders/{order_id}:watch"]
    assert watches[0].headers["authorization"] == f"Bearer {token}"
    assert token not in page.url
    seen = await page.evaluate("window.__statuses")
    assert seen.index("CREATED") < seen.index("PAID"), seen  # it changed on screen, without a reload

    row = page.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(row).to_have_attribute("data-state", "PAID")
    await expect(row).to_contain_text("25.00 USD")
    assert json.loads(await page.evaluate("JSON.stringify(claimsOf(token))"))["sub"] == who

    # The details: the full id, the items, the total, the payment method and the timeline.
    await expect(page.locator("#order-id")).to_have_text(order_id)
    await expect(page.locator("#order-items tbody tr")).to_have_count(1)
    await expect(page.locator("#order-items tbody tr")).to_contain_text("SKU-1")
    await expect(page.locator("#order-items tbody tr")).to_contain_text("12.50 USD")
    await expect(page.locator("#d-total")).to_have_text("25.00 USD")
    await expect(page.locator("#d-payment")).to_have_text("Visa (pm_card_visa)")
    await expect(page.locator("#d-money")).to_have_text("25.00 USD charged")
    await expect(page.locator("#timeline li")).to_have_count(2)
    assert await timeline_kinds(page) == ["PLACED", "PAYMENT_SUCCEEDED"]
    await expect(page.locator("#timeline li").nth(0)).to_contain_text("Placed")
    await expect(page.locator("#timeline li").nth(0)).to_contain_text("by you")
    await expect(page.locator("#timeline li").nth(1)).to_contain_text("Payment succeeded")
    await expect(page.locator("#timeline li").nth(1)).to_contain_text("by the payment service")
    await expect(page.get_by_role("button", name="Cancel this order")).to_be_hidden()  # PAID: nothing to cancel


async def test_a_declined_order_becomes_cancelled_with_its_reason(page: Page) -> None:
    await place(page, "pm_card_visa", quantity="1", price="8.99")
    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)

    await page.get_by_label("SKU (item 1)").fill("SKU-7")
    await page.get_by_role("button", name="Add item").click()
    await page.get_by_label("SKU (item 2)").fill("SKU-9")
    await page.get_by_label("Unit price (item 2)").fill("0.99")
    await place(page, "pm_card_declined", quantity="3", price="4.00")
    await expect(status).to_have_attribute("data-state", "CANCELLED", timeout=FINAL_TIMEOUT_MS)
    await expect(status).to_contain_text("payment failed: Your card was declined.")

    rows = page.locator("#orders tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_have_attribute("data-state", "CANCELLED")  # newest first
    await expect(rows.nth(0)).to_contain_text("payment failed: Your card was declined.")
    await expect(rows.nth(0)).to_contain_text("12.99 USD")
    await expect(rows.nth(1)).to_have_attribute("data-state", "PAID")

    await expect(page.locator("#order-items tbody tr")).to_have_count(2)
    await expect(page.locator("#d-money")).to_have_text("nothing was charged")
    await expect(status).to_have_attribute("data-refund-state", "")  # nothing owed: no refund badge
    assert await timeline_kinds(page) == ["PLACED", "PAYMENT_DECLINED", "CANCELLED"]


async def test_cancelling_while_the_payment_is_in_flight_ends_refunded(page: Page, system: System) -> None:
    await page.set_viewport_size(DESKTOP)
    await place(page, "pm_card_visa")
    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "CREATED")
    order_id = await status.get_attribute("data-order-id")
    assert order_id

    # Asked to confirm first; "keep" leaves the order alone.
    cancel = page.get_by_role("button", name="Cancel this order")
    dialog = page.get_by_role("dialog")
    await cancel.click()
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(f"Order {order_id[:8]} (25.00 USD) will be cancelled")
    await dialog.get_by_role("button", name="Keep the order").click()
    await expect(dialog).to_be_hidden()
    await expect(status).to_have_attribute("data-state", "CREATED")

    # Confirmed while payment_svc is charging (its mock provider takes 2 s): cancelled, then refunded.
    await cancel.click()
    await expect(dialog).to_be_visible()
    async with grpc.aio.insecure_channel(system.stack.payment.target) as channel:
        payments = payments_pb2_grpc.PaymentServiceStub(channel)

        async def charging() -> bool:
            payment = await payments.GetPayment(payments_pb2.GetPaymentRequest(order_id=order_id), timeout=5)
            return bool(payment.status == payments_pb2.PAYMENT_STATUS_PENDING)

        await wait_for(charging, timeout=10, what="the charge to start")
    async with page.expect_response(lambda r: r.url.endswith(f"/v1/orders/{order_id}:cancel")) as answer:
        await dialog.get_by_role("button", name="Yes, cancel the order").click()
    cancelled = await (await answer.value).json()
    assert cancelled["state"] == "ORDER_STATE_CANCELLED"
    assert cancelled["paymentId"] == ""  # the cancel beat the charge's outcome
    await expect(dialog).to_be_hidden()
    await expect(status).to_have_attribute("data-state", "CANCELLED")

    await expect(status).to_have_attribute("data-refund-state", "REFUNDED", timeout=FINAL_TIMEOUT_MS)
    await expect(status).to_contain_text("refunded")
    await expect(page.locator("#d-money .badge")).to_have_text("refunded")
    timeline = page.locator("#timeline li")
    await expect(timeline).to_have_count(5)
    assert await timeline_kinds(page) == ["PLACED", "CANCELLED", "PAYMENT_SUCCEEDED", "REFUND_REQUESTED", "REFUNDED"]
    for i, words in enumerate(["Placed", "Cancelled", "Payment succeeded", "Refund requested", "Refunded"]):
        await expect(timeline.nth(i)).to_contain_text(words)
    await expect(timeline.nth(1)).to_contain_text("by you")
    await expect(timeline.nth(1)).to_contain_text("cancelled on the web page")
    seen = await page.evaluate("window.__statuses")
    assert "CANCELLED" in seen  # the refund arrived live: the page saw it pending
    row = page.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(row).to_have_attribute("data-refund-state", "REFUNDED")
    await expect(row).to_contain_text("refunded")

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)


async def test_the_watched_order_survives_a_reload_and_its_id_copies(page: Page, system: System, who: str) -> None:
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=system.url)
    await place(page, "pm_card_mastercard", quantity="3", price="0.10")
    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "CREATED")
    order_id = await status.get_attribute("data-order-id")
    assert order_id
    await expect(page).to_have_url(f"{system.url}/#order={order_id}")

    await page.reload()
    await expect(page.locator("#account")).to_contain_text(f"Signed in as {who}")  # still, in this tab
    await expect(status).to_have_attribute("data-order-id", order_id)
    await expect(page.locator("#order-id")).to_have_text(order_id)
    await expect(page.locator("#d-payment")).to_have_text("Mastercard (pm_card_mastercard)")
    await expect(page.locator("#d-total")).to_have_text("0.30 USD")
    await expect(status).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)  # still live
    row = page.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(row).to_have_attribute("aria-current", "true")

    # The full id: selectable text, and a button that copies it.
    assert await page.locator("#order-id").evaluate("(code) => getComputedStyle(code).userSelect") == "all"
    await page.get_by_role("button", name="Copy order id").click()
    await expect(page.locator("#copy-note")).to_have_text("Copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == order_id

    # An unknown id in the URL is said so, not shown.
    await page.goto("/#order=no-such-order")
    await expect(page.locator("#order-error")).to_contain_text("cannot be shown")
    await expect(page.locator("#details")).to_be_hidden()


async def test_client_side_validation_shows_every_bad_field_in_one_round(page: Page) -> None:
    posts = order_posts(page)
    await page.get_by_label("SKU (item 1)").fill(" ")
    await page.get_by_label("Quantity (item 1)").fill("0")
    await page.get_by_label("Unit price (item 1)").fill("1.0000000001")
    await page.get_by_role("button", name="Add item").click()
    await page.get_by_label("SKU (item 2)").fill("y" * 129)
    await page.get_by_label("Quantity (item 2)").fill("2.5")
    await page.get_by_label("Unit price (item 2)").fill("-1")
    await page.get_by_role("button", name="Add item").click()
    await page.get_by_label("SKU (item 3)").fill("SKU-3")
    await page.get_by_label("Quantity (item 3)").fill("1001")
    await page.get_by_label("Unit price (item 3)").fill("1000000000001")
    await page.get_by_label("Currency").fill("usd")
    # A payment method the API does not know (the select offers none, so one is slipped in).
    await page.locator("#payment").evaluate("(s) => s.add(new Option('Bogus', 'pm_bogus', true, true))")
    await page.get_by_role("button", name="Place order").click()

    expected = {
        "payment": "unknown payment method; use one of "
        "pm_card_amex, pm_card_declined, pm_card_mastercard, pm_card_visa",
        "item-0-sku": "is required",
        "item-0-quantity": "must be between 1 and 1000",
        "item-0-price": "must have at most 9 decimal places",
        "item-1-sku": "must be at most 128 characters",
        "item-1-quantity": "enter a whole number",
        "item-1-price": "must not be negative",
        "item-2-quantity": "must be between 1 and 1000",
        "item-2-price": "must be at most 1,000,000,000,000",
        "currency": "must be a 3-letter ISO 4217 code, e.g. USD",
    }
    for field, message in expected.items():
        await expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator(f"#{field}-error")).to_have_text(message)
    await expect(page.locator("[aria-invalid]")).to_have_count(len(expected))
    await expect(page.get_by_role("alert").first).to_have_text(f"Please correct {len(expected)} fields.")
    await expect(page.get_by_label("Payment method")).to_be_focused()
    assert posts == []  # caught on the page: nothing was sent

    # A price that is not a number at all, and an empty one.
    await page.get_by_label("Unit price (item 1)").fill("twelve")
    await page.get_by_label("Unit price (item 2)").fill("")
    await page.get_by_role("button", name="Place order").click()
    await expect(page.locator("#item-0-price-error")).to_have_text("enter a price like 12.50")
    await expect(page.locator("#item-1-price-error")).to_have_text("is required")
    assert posts == []


async def test_the_apis_field_violations_show_next_to_the_fields(page: Page) -> None:
    # The page checks the same rules first, so the request is spoiled on its way to reach the API's own checks.
    async def spoil(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        body["paymentMethod"] = "pm_bogus"
        body["lineItems"][0]["quantity"] = 0
        await route.continue_(post_data=json.dumps(body))

    await page.route("**/v1/orders", spoil)
    async with page.expect_response(lambda r: r.url.endswith("/v1/orders") and r.request.method == "POST") as answer:
        await place(page, "pm_card_visa", quantity="1")
    reply = await answer.value
    assert reply.status == 400
    body = await reply.json()
    assert {v["field"] for d in body["details"] for v in d.get("fieldViolations", [])} == {
        "order.payment_method",
        "order.line_items[0].quantity",
    }

    payment_field = page.get_by_label("Payment method")
    quantity_field = page.get_by_label("Quantity (item 1)")
    await expect(payment_field).to_have_attribute("aria-invalid", "true")
    await expect(quantity_field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#payment-error")).to_contain_text("unknown payment method")
    await expect(page.locator("#item-0-quantity-error")).to_have_text("must be between 1 and 1000")
    await expect(page.get_by_role("alert").first).to_have_text("Please correct 2 fields.")
    await expect(payment_field).to_be_focused()
    await expect(page.get_by_role("status")).not_to_have_attribute("data-state", "CREATED")

    # Sent as typed, the same form goes through and the errors are gone.
    await page.unroute("**/v1/orders")
    await place(page, "pm_card_visa", quantity="1", price="1.00")
    await expect(page.get_by_role("status")).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)
    await expect(page.locator("[aria-invalid]")).to_have_count(0)
    await expect(page.locator("#payment-error")).to_be_empty()


async def test_a_phone_wide_page_does_not_scroll_sideways(page: Page) -> None:
    await page.set_viewport_size(PHONE)
    await no_horizontal_scroll(page)

    # With every field marked wrong …
    await page.get_by_label("Quantity (item 1)").fill("0")
    await page.get_by_label("Unit price (item 1)").fill("-1")
    await page.get_by_label("Currency").fill("dollars")
    await page.get_by_role("button", name="Place order").click()
    await expect(page.locator("[aria-invalid]")).to_have_count(3)
    await no_horizontal_scroll(page)

    # … and with an order, its details, its timeline and the customer's orders.
    await page.get_by_label("Currency").fill("USD")
    await page.get_by_role("button", name="Add item").click()
    await page.get_by_label("SKU (item 2)").fill("GIFT-WRAP-" + "X" * 40)  # a long SKU wraps
    await page.get_by_label("Unit price (item 2)").fill("3.99")
    await place(page, "pm_card_amex", quantity="2", price="12.50")
    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)
    await expect(page.locator("#timeline li")).to_have_count(2)
    await expect(page.locator("#orders tbody tr")).to_have_count(1)
    await no_horizontal_scroll(page)

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "web-page-phone.png"), full_page=True)


# --- signing out, and a token the API refuses ---------------------------------------------------


async def test_sign_out_forgets_the_token_and_the_customers_orders(page: Page, who: str) -> None:
    await place(page, "pm_card_visa")
    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)
    await expect(page.locator("#orders tbody tr")).to_have_count(1)

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#account")).to_contain_text("Not signed in.")
    await expect(page.locator("#account")).not_to_contain_text(who)
    assert await page.evaluate("sessionStorage.getItem('orders.auth.token')") is None
    await expect(page.get_by_label("Customer")).to_have_value("")
    await expect(page.locator("#signin-note")).to_be_visible()
    await expect(page.get_by_role("button", name="Place order")).to_be_disabled()
    await expect(page.locator("#orders")).to_be_hidden()
    await expect(page.locator("#details")).to_be_hidden()
    await expect(status).to_have_text("No order watched yet.")

    await page.reload()  # nothing of the sign-in is left in the tab
    await expect(page.locator("#account")).to_contain_text("Not signed in.")


async def test_a_refused_token_signs_out_with_a_message(page: Page, who: str) -> None:
    await place(page, "pm_card_visa")
    status = page.get_by_role("status")
    await expect(status).to_have_attribute("data-state", "PAID", timeout=FINAL_TIMEOUT_MS)

    # The same claims under a signature the provider never made (as a token of an earlier run would be).
    await page.evaluate(
        """() => {
            const [header, payload, signature] = sessionStorage.getItem("orders.auth.token").split(".");
            const forged = signature.split("").reverse().join("");
            sessionStorage.setItem("orders.auth.token", [header, payload, forged].join("."));
        }"""
    )
    async with page.expect_response(lambda r: "/v1/orders" in r.url) as answer:
        await page.reload()
    assert (await answer.value).status == 401
    await expect(page.locator("#auth-message")).to_have_text(
        "Your sign-in has expired or was not accepted; sign in again."
    )
    await expect(page.locator("#account")).to_contain_text("Not signed in.")
    assert await page.evaluate("sessionStorage.getItem('orders.auth.token')") is None
    await expect(page.get_by_role("button", name="Place order")).to_be_disabled()

    await sign_in(page, who)  # and back: the order in the address is shown again
    await expect(status).to_have_attribute("data-state", "PAID")
    await expect(page.locator("#auth-message")).to_be_empty()


async def test_denying_at_the_provider_leaves_the_page_signed_out_and_says_so(signed_out: Page, system: System) -> None:
    page = signed_out
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("button", name="Deny").click()
    await expect(page.locator("#auth-message")).to_have_text(re.compile(r"^Signing in failed: .*denied the request"))
    await expect(page.locator("#account")).to_contain_text("Not signed in.")
    await expect(page).to_have_url(f"{system.url}/")  # the error and the state are gone from the address


async def test_the_pkce_challenge_is_the_same_without_crypto_subtle(page: Page) -> None:
    # Served over plain http from another host (not a secure context) the page hashes the verifier itself.
    same = await page.evaluate(
        """async () => {
            const texts = ["", "abc", "a".repeat(55), "a".repeat(56), "a".repeat(64), "x".repeat(1000)];
            for (const text of texts) {
                const data = new TextEncoder().encode(text);
                const subtle = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
                if (base64url(subtle) !== base64url(sha256Plain(data))) return text;
            }
            return true;
        }"""
    )
    assert same is True


async def test_the_api_reference_renders_the_openapi_document_with_nothing_from_elsewhere(
    browser: Browser, system: System
) -> None:
    if not REDOC.is_file():
        pytest.skip(f"{REDOC} is not installed (`make docs-ui` needs npm): /docs is a notice")
    context = await browser.new_context(base_url=system.url, viewport=DESKTOP)
    routed: list[str] = []

    async def refuse(route: Route) -> None:
        routed.append(route.request.url)
        await route.abort()

    await context.route(NOT_LOCAL, refuse)
    page = await context.new_page()
    failed: list[tuple[str, str | None]] = []
    page.on("requestfailed", lambda request: failed.append((request.url, request.failure)))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        reply = await page.goto("/docs")
        assert reply is not None
        assert reply.status == 200
        await expect(page.get_by_role("heading", name="Order saga HTTP/JSON API")).to_be_visible(timeout=20_000)
        for text in ("Places an order", "/v1/orders/{order_id}:cancel", "google.rpc.Status"):
            await expect(page.get_by_text(text).first).to_be_attached()
    finally:
        await context.close()
    assert errors == []
    # Redoc's footer asks a CDN for its logo: the page's policy refuses it before any request leaves.
    assert routed == []
    assert all(failure == "csp" for url, failure in failed if NOT_LOCAL.match(url)), failed
