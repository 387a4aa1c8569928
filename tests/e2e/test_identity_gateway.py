"""Attacks through the gateway (HTTP/JSON and native gRPC): no token, forged tokens, forged headers, another
customer's orders, too many writes, malformed headers.

Envoy's jwt_authn checks the token first; order_svc verifies it again (tests/integration/test_identity.py
attacks order_svc's own port). Tokens are the development provider's real RS256 ID tokens; a wrong
audience and a wrong issuer are real ones too (another client id; the provider asked under another host
name). A claim the provider will not sign (expired, not yet valid) is forged with a key of our own:
the real gateway refuses it (Envoy names the claim, as it checks time and issuer before the signature;
order_svc would refuse the unknown key). So each claim is also checked alone, against a second Envoy
that trusts our key; order_svc, which does not, then refuses what that Envoy lets through. The
verifier's own claim checks are unit-tested in tests/unit/test_token_verifier.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from orders.v1 import orders_pb2, orders_pb2_grpc

from devstack.gateway import IDENTITY_HEADER, page_or_placeholder
from devstack.identity import AUDIENCE
from devstack.stack import EnvoyProcess, free_port
from orders_client._devlogin import DEV_CLIENT_SECRET, dev_token
from tests.e2e.conftest import HttpAs, System, TokenFor

Json = dict[str, Any]
Metadata = tuple[tuple[str, str], ...]

ADMIN_ROLE = "orders:admin"
#: Headers an attacker might hope a service trusts for identity; only the token counts.
FORGED_IDENTITY = {
    "x-customer-id": "victim",
    "x-user": "victim",
    "x-user-id": "victim",
    "x-forwarded-user": "victim",
    IDENTITY_HEADER: "victim",
    "x-jwt-payload": base64.urlsafe_b64encode(b'{"sub":"victim"}').decode().rstrip("="),
}


def order_json(customer_id: str = "") -> Json:
    """An order; an empty customerId is the signed-in customer's."""
    return {
        "customerId": customer_id,
        "lineItems": [{"sku": "SKU-1", "quantity": 1, "unitPrice": {"currencyCode": "USD", "units": "3"}}],
        "paymentMethod": "pm_card_visa",
    }


def order_request(customer_id: str = "") -> orders_pb2.CreateOrderRequest:
    return orders_pb2.CreateOrderRequest(
        order=orders_pb2.Order(
            customer_id=customer_id,
            payment_method="pm_card_visa",
            line_items=[orders_pb2.LineItem(sku="SKU-1", quantity=1, unit_price={"currency_code": "USD", "units": 3})],
        )
    )


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def assert_status(reply: httpx.Response, http_status: int, code: grpc.StatusCode) -> Json:
    """A google.rpc.Status JSON answer, like every other error of the gateway."""
    assert reply.status_code == http_status, (reply.status_code, reply.text)
    assert reply.headers["content-type"].startswith("application/json"), reply.headers
    body: Json = reply.json()
    assert body["code"] == code.value[0], body
    assert body["message"], body
    return body


def assert_unauthenticated(reply: httpx.Response) -> str:
    """401 from jwt_authn: Status JSON that says what to send, and a WWW-Authenticate challenge."""
    message = str(assert_status(reply, 401, grpc.StatusCode.UNAUTHENTICATED)["message"])
    assert "Authorization: Bearer" in message, message
    assert reply.headers["www-authenticate"].startswith("Bearer"), reply.headers
    return message


async def refused(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    return raised.value.details() or ""


async def placed(http: httpx.AsyncClient, customer_id: str = "") -> Json:
    reply = await http.post("/v1/orders", json=order_json(customer_id))
    assert reply.status_code == 200, reply.text
    order: Json = reply.json()
    return order


def _b64(data: Json) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def who(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ── Our own signing key, and an Envoy that trusts it (to test each claim check alone) ───────────────


MY_KID = "test-key-1"
MY_ISSUER = "https://issuer.test.invalid"  # never fetched: Envoy gets the keys from jwks_url


class KeyServer:
    """A JWKS with one RSA key of ours, on 127.0.0.1, and tokens signed with it."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        document = json.dumps({"keys": [{**jwk, "kid": MY_KID, "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="jwks", daemon=True)

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def sign(self, **claims: Any) -> str:
        now = int(time.time())
        defaults = {"iss": MY_ISSUER, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 300}
        payload = {k: v for k, v in {**defaults, **claims}.items() if v is not None}
        return jwt.encode(payload, self.key, "RS256", headers={"kid": MY_KID})


@pytest.fixture(scope="module")
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


async def start_gateway(system: System, workdir: Path, **settings: Any) -> EnvoyProcess:
    """Another Envoy in front of the same order_svc, rendered with ``settings``."""
    defaults: dict[str, Any] = {"port": free_port(), "admin_port": free_port(), "page": page_or_placeholder(workdir)}
    config = system.stack.gateway_config(**{**defaults, **settings})
    gateway = EnvoyProcess(config, workdir).start()
    try:
        await gateway.wait_ready()
    except BaseException:
        gateway.terminate()
        raise
    return gateway


@pytest.fixture(scope="module")
async def my_key_gateway(
    system: System, key_server: KeyServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[EnvoyProcess]:
    """An Envoy whose jwt_authn trusts only our key and issuer (order_svc behind it still trusts only the provider)."""
    gateway = await start_gateway(
        system, tmp_path_factory.mktemp("envoy-my-key"), issuer=MY_ISSUER, jwks_url=key_server.jwks_url
    )
    try:
        yield gateway
    finally:
        gateway.terminate()


#: The write limit of the dedicated gateway: three at once, then one a minute (never refilled during a test).
SMALL_BURST = 3


@pytest.fixture(scope="module")
async def limited_gateway(system: System, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EnvoyProcess]:
    """An Envoy with a tiny write limit, so the shared gateway's limit is never spent by these tests."""
    gateway = await start_gateway(
        system, tmp_path_factory.mktemp("envoy-limited"), rate_limit_per_minute=1, rate_limit_burst=SMALL_BURST
    )
    try:
        yield gateway
    finally:
        gateway.terminate()


@pytest.fixture
async def grpc_gateway(system: System) -> AsyncIterator[orders_pb2_grpc.OrderServiceAsyncStub]:
    """OrderService over the gateway's native gRPC (h2c), with no token unless a call brings one."""
    async with grpc.aio.insecure_channel(system.url.removeprefix("http://")) as channel:
        yield orders_pb2_grpc.OrderServiceStub(channel)


def grpc_calls(stub: orders_pb2_grpc.OrderServiceAsyncStub, order_id: str) -> dict[str, Callable[[Metadata], Any]]:
    async def watch(metadata: Metadata) -> list[orders_pb2.Order]:
        request = orders_pb2.WatchOrderRequest(order_id=order_id)
        return [o async for o in stub.WatchOrder(request, metadata=metadata, timeout=10)]

    return {
        "CreateOrder": lambda m: stub.CreateOrder(order_request(), metadata=m, timeout=10),
        "GetOrder": lambda m: stub.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), metadata=m, timeout=10),
        "ListOrders": lambda m: stub.ListOrders(orders_pb2.ListOrdersRequest(), metadata=m, timeout=10),
        "CancelOrder": lambda m: stub.CancelOrder(
            orders_pb2.CancelOrderRequest(order_id=order_id), metadata=m, timeout=10
        ),
        "WatchOrder": watch,
    }


def http_routes(order_id: str) -> list[tuple[str, str, Json | None]]:
    """Every API route, as HTTP/JSON and as the gRPC path an HTTP/1 client can also send."""
    return [
        ("POST", "/v1/orders", order_json()),
        ("GET", "/v1/orders", None),
        ("GET", f"/v1/orders/{order_id}", None),
        ("POST", f"/v1/orders/{order_id}:cancel", {}),
        ("GET", f"/v1/orders/{order_id}:watch", None),
        ("GET", "/v1/nothing-here", None),
        *[
            ("POST", f"/orders.v1.OrderService/{method}", {})
            for method in ("CreateOrder", "GetOrder", "ListOrders", "CancelOrder", "WatchOrder")
        ],
    ]


# ── No token ───────────────────────────────────────────────────────────────────────────────────────────


async def test_every_api_route_without_a_token_is_a_401_status_json(
    anonymous: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    order_id = (await placed(http))["orderId"]
    for method, path, body in http_routes(order_id):
        reply = await anonymous.request(method, path, json=body)
        message = assert_unauthenticated(reply)
        assert message.startswith("Jwt is missing"), (path, message)
        assert "x-envoy-upstream-service-time" not in reply.headers, path  # refused at the edge


async def test_every_method_over_native_grpc_without_a_token_is_unauthenticated(
    grpc_gateway: orders_pb2_grpc.OrderServiceAsyncStub, http: httpx.AsyncClient
) -> None:
    order_id = (await placed(http))["orderId"]
    for name, call in grpc_calls(grpc_gateway, order_id).items():
        details = await refused(call(()), grpc.StatusCode.UNAUTHENTICATED)
        assert "Authorization: Bearer" in details, name


async def test_the_page_and_its_config_need_no_token(anonymous: httpx.AsyncClient, system: System) -> None:
    page = await anonymous.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    config = await anonymous.get("/config.json")
    assert config.status_code == 200
    assert config.headers["content-type"] == "application/json"
    assert config.json() == {
        "issuer": system.stack.identity.issuer,
        "clientId": AUDIENCE,
        "clientSecret": DEV_CLIENT_SECRET,
        "authorizationEndpoint": f"{system.stack.identity.issuer}/oauth2/authorize",
        "tokenEndpoint": "/oauth2/token",
    }


async def test_the_page_signs_in_through_the_gateways_token_route(anonymous: httpx.AsyncClient, system: System) -> None:
    """What the web page does: the provider's login form, then the code exchanged at /oauth2/token (same origin)."""
    issuer = system.stack.identity.issuer
    redirect = f"{system.url}/"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": AUDIENCE,
            "redirect_uri": redirect,
            "scope": "openid",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    customer = who("web")
    async with httpx.AsyncClient(trust_env=False, timeout=15) as browser:
        login = await browser.post(f"{issuer}/oauth2/authorize?{query}", data={"sub": customer})
    assert login.status_code == 302, login.text
    code = urllib.parse.parse_qs(urllib.parse.urlparse(login.headers["location"]).query)["code"][0]
    exchange = await anonymous.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": AUDIENCE,
            "client_secret": DEV_CLIENT_SECRET,
            "code_verifier": verifier,
        },
    )
    assert exchange.status_code == 200, exchange.text
    tokens = exchange.json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    # The Host was rewritten to the provider's: the token names the issuer everyone trusts, not the gateway.
    assert claims["iss"] == issuer
    assert claims["sub"] == customer
    listed = await anonymous.get("/v1/orders", headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert listed.status_code == 200, listed.text
    # The provider's access token is opaque: the ID token is the bearer.
    opaque = await anonymous.get("/v1/orders", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert_unauthenticated(opaque)


# ── Forged, stale and misdirected tokens ─────────────────────────────────────────────────────────────


def provider_kid(system: System) -> str:
    """The id of the provider's signing key (its tokens name none; its JWKS does)."""
    with httpx.Client(trust_env=False, timeout=5) as client:
        keys = client.get(system.stack.identity.jwks_url).json()["keys"]
    return str(keys[0]["kid"])


def forgeries(good: str, kid: str) -> dict[str, str]:
    """Tokens made from a real one, or signed with a key the provider never had (``kid``: the provider's)."""
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "tampered payload": f"{header}.{_b64({**claims, 'sub': 'victim'})}.{signature}",
        "cut signature": f"{header}.{payload}.{signature[: len(signature) // 2]}",
        "no signature": f"{header}.{payload}.",
        "unknown signing key": jwt.encode({**claims, "exp": now + 300}, stranger, "RS256"),
        "the provider's kid, our key": jwt.encode({**claims, "exp": now + 300}, stranger, "RS256", {"kid": kid}),
        # The provider will not sign these claims: forged with our key (Envoy names the claim, checked before
        # the signature; each claim alone is checked against my_key_gateway below).
        "expired": jwt.encode({**claims, "exp": now - 3600}, stranger, "RS256", {"kid": kid}),
        "not yet valid": jwt.encode({**claims, "nbf": now + 3600, "exp": now + 7200}, stranger, "RS256", {"kid": kid}),
        "another issuer": jwt.encode({**claims, "iss": "https://evil.example"}, stranger, "RS256", {"kid": kid}),
        "garbage": "not-a-jwt",
        "two tokens": f"{good},{good}",
    }


#: What Envoy says about each forgery (its message starts the Status JSON's message).
REFUSED_BECAUSE = {
    "alg none": "header.payload.signature",  # an empty signature: not even a JWT to Envoy
    "tampered payload": "verification fails",
    "cut signature": "verification fails",
    "no signature": "header.payload.signature",
    "unknown signing key": "verification fails",
    "the provider's kid, our key": "verification fails",
    "expired": "expired",
    "not yet valid": "not yet valid",
    "another issuer": "issuer is not configured",
    "garbage": "header.payload.signature",
    "two tokens": "header.payload.signature",
}


async def test_forged_tokens_are_refused_on_every_route(
    system: System, token: TokenFor, http_as: HttpAs, customer: str
) -> None:
    anonymous = http_as(None)
    order_id = (await placed(http_as(customer)))["orderId"]
    for forgery, forged in forgeries(token(customer), provider_kid(system)).items():
        for method, path, body in http_routes(order_id):
            reply = await anonymous.request(method, path, json=body, headers={"Authorization": f"Bearer {forged}"})
            message = assert_unauthenticated(reply)
            assert REFUSED_BECAUSE[forgery] in message.lower(), (forgery, path, message)


async def test_forged_tokens_are_refused_over_native_grpc(
    system: System,
    grpc_gateway: orders_pb2_grpc.OrderServiceAsyncStub,
    token: TokenFor,
    http: httpx.AsyncClient,
    customer: str,
) -> None:
    order_id = (await placed(http))["orderId"]
    for forgery, forged in forgeries(token(customer), provider_kid(system)).items():
        for name, call in grpc_calls(grpc_gateway, order_id).items():
            details = await refused(call(bearer(forged)), grpc.StatusCode.UNAUTHENTICATED)
            assert details, (forgery, name)


async def test_a_token_only_in_the_query_or_with_another_scheme_is_not_taken(
    anonymous: httpx.AsyncClient, token: TokenFor, customer: str
) -> None:
    good = token(customer)
    assert_unauthenticated(await anonymous.get("/v1/orders", params={"access_token": good}))
    assert_unauthenticated(await anonymous.get("/v1/orders", headers={"Authorization": f"Token {good}"}))
    assert_unauthenticated(await anonymous.get("/v1/orders", headers={"Authorization": good}))


async def test_a_real_token_for_another_application_is_a_403(
    system: System, anonymous: httpx.AsyncClient, grpc_gateway: orders_pb2_grpc.OrderServiceAsyncStub
) -> None:
    """Signed by the provider, but issued to another client: its audience is not this API."""
    other_app = await asyncio.to_thread(
        dev_token, who("aud"), issuer=system.stack.identity.issuer, client_id="another-app"
    )
    assert jwt.decode(other_app, options={"verify_signature": False})["aud"] in ("another-app", ["another-app"])
    for method, path, body in [("GET", "/v1/orders", None), ("POST", "/v1/orders", order_json())]:
        reply = await anonymous.request(method, path, json=body, headers={"Authorization": f"Bearer {other_app}"})
        message = str(assert_status(reply, 403, grpc.StatusCode.PERMISSION_DENIED)["message"])
        assert "audience" in message.lower(), message
    details = await refused(
        grpc_gateway.ListOrders(orders_pb2.ListOrdersRequest(), metadata=bearer(other_app), timeout=10),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "audience" in details.lower()


async def test_a_real_token_from_another_issuer_url_is_refused(system: System, anonymous: httpx.AsyncClient) -> None:
    """Signed by the provider's own key, but for the issuer it was asked under (localhost): not the trusted one."""
    elsewhere = system.stack.identity.issuer.replace("127.0.0.1", "localhost")
    stray = await asyncio.to_thread(dev_token, who("iss"), issuer=elsewhere)
    assert jwt.decode(stray, options={"verify_signature": False})["iss"] == elsewhere
    message = assert_unauthenticated(await anonymous.get("/v1/orders", headers={"Authorization": f"Bearer {stray}"}))
    assert "issuer" in message.lower(), message


@pytest.mark.parametrize(
    ("case", "claims", "status", "says"),
    [
        ("expired", {"exp": -3600}, 401, "expired"),
        ("not yet valid", {"nbf": 3600, "exp": 7200}, 401, "not yet valid"),
        ("another issuer", {"iss": "https://evil.example"}, 401, "issuer"),
        ("another audience", {"aud": "another-app"}, 403, "audience"),
        ("no audience", {"aud": None}, 403, "audience"),
    ],
)
async def test_each_claim_is_checked_by_envoy(
    my_key_gateway: EnvoyProcess, key_server: KeyServer, case: str, claims: Json, status: int, says: str
) -> None:
    """Signed with a key this Envoy trusts, so the one wrong claim is all that is checked."""
    now = int(time.time())
    relative = {k: (now + v if k in ("exp", "nbf") else v) for k, v in claims.items()}
    forged = key_server.sign(**relative)
    async with httpx.AsyncClient(base_url=my_key_gateway.url, trust_env=False, timeout=15) as client:
        reply = await client.get("/v1/orders", headers={"Authorization": f"Bearer {forged}"})
    code = grpc.StatusCode.UNAUTHENTICATED if status == 401 else grpc.StatusCode.PERMISSION_DENIED
    message = str(assert_status(reply, status, code)["message"])
    assert says in message.lower(), (case, message)
    assert "x-envoy-upstream-service-time" not in reply.headers


async def test_what_envoy_lets_through_order_svc_still_verifies(
    my_key_gateway: EnvoyProcess, key_server: KeyServer
) -> None:
    """A token whose every claim this Envoy accepts, signed by a key order_svc does not trust: order_svc says 401."""
    good_for_envoy = key_server.sign(sub="mallory")
    async with httpx.AsyncClient(base_url=my_key_gateway.url, trust_env=False, timeout=15) as client:
        reply = await client.get("/v1/orders", headers={"Authorization": f"Bearer {good_for_envoy}"})
        no_token = await client.get("/v1/orders")
    assert_status(reply, 401, grpc.StatusCode.UNAUTHENTICATED)
    assert "x-envoy-upstream-service-time" in reply.headers  # this time order_svc answered, not Envoy
    assert reply.json()["details"], "order_svc's own status carries an ErrorInfo"
    assert_unauthenticated(no_token)


# ── Another customer's orders ───────────────────────────────────────────────────────────────────────────


async def test_a_customer_cannot_get_watch_cancel_or_list_another_customers_orders(http_as: HttpAs) -> None:
    bob, eve = who("bob"), who("eve")
    as_bob, as_eve = http_as(bob), http_as(eve)
    bobs = (await placed(as_bob))["orderId"]
    unknown = str(uuid.uuid4())
    answers: dict[str, list[str]] = {}
    for order_id in (bobs, unknown):
        answers[order_id] = [
            str(assert_status(reply, 404, grpc.StatusCode.NOT_FOUND)["message"])
            for reply in [
                await as_eve.get(f"/v1/orders/{order_id}"),
                await as_eve.get(f"/v1/orders/{order_id}:watch"),
                await as_eve.post(f"/v1/orders/{order_id}:cancel", json={"reason": "mine now"}),
            ]
        ]
    # No oracle: another customer's order answers exactly like an id that does not exist.
    assert [a.replace(bobs, "ID") for a in answers[bobs]] == [a.replace(unknown, "ID") for a in answers[unknown]]

    listed = await as_eve.get("/v1/orders")
    assert listed.status_code == 200
    assert all(o["customerId"] == eve for o in listed.json()["orders"])
    assert_status(await as_eve.get("/v1/orders", params={"customerId": bob}), 403, grpc.StatusCode.PERMISSION_DENIED)

    in_bobs_name = await as_eve.post("/v1/orders", json=order_json(bob))
    status = assert_status(in_bobs_name, 403, grpc.StatusCode.PERMISSION_DENIED)
    assert any(d.get("reason") == "CUSTOMER_MISMATCH" for d in status["details"]), status  # order_svc's details kept

    still = await as_bob.get(f"/v1/orders/{bobs}")
    assert still.status_code == 200
    assert still.json()["cancelReason"] != "mine now"
    assert [o["orderId"] for o in (await as_bob.get("/v1/orders")).json()["orders"]] == [bobs]


async def test_over_native_grpc_too(
    grpc_gateway: orders_pb2_grpc.OrderServiceAsyncStub, token: TokenFor, http_as: HttpAs
) -> None:
    bob, eve = who("bob"), who("eve")
    bobs = (await placed(http_as(bob)))["orderId"]
    as_eve = bearer(token(eve))
    for name in ("GetOrder", "CancelOrder", "WatchOrder"):
        await refused(grpc_calls(grpc_gateway, bobs)[name](as_eve), grpc.StatusCode.NOT_FOUND)
    await refused(
        grpc_gateway.ListOrders(orders_pb2.ListOrdersRequest(customer_id=bob), metadata=as_eve, timeout=10),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await grpc_gateway.CreateOrder(order_request(bob), metadata=as_eve, timeout=10)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details)
    assert info.reason == "CUSTOMER_MISMATCH"  # the details survive the gateway
    mine = await grpc_gateway.CreateOrder(order_request(), metadata=as_eve, timeout=10)
    assert mine.customer_id == eve


async def test_the_operator_reads_anyones_order_through_the_gateway_but_cannot_cancel_it(http_as: HttpAs) -> None:
    carol = who("carol")
    carols = (await placed(http_as(carol)))["orderId"]
    operator = http_as(who("ops"), [ADMIN_ROLE])
    got = await operator.get(f"/v1/orders/{carols}")
    assert got.status_code == 200, got.text
    assert got.json()["customerId"] == carol
    listed = await operator.get("/v1/orders", params={"customerId": carol})
    assert [o["orderId"] for o in listed.json()["orders"]] == [carols]
    assert_status(await operator.post(f"/v1/orders/{carols}:cancel", json={}), 404, grpc.StatusCode.NOT_FOUND)


# ── Forged identity headers ───────────────────────────────────────────────────────────────────────────


async def test_forged_identity_headers_change_nothing_without_a_token(http_as: HttpAs) -> None:
    victim = http_as("victim")
    victims = (await placed(victim))["orderId"]
    anonymous = http_as(None)
    for method, path, body in http_routes(victims):
        assert_unauthenticated(await anonymous.request(method, path, json=body, headers=FORGED_IDENTITY))


async def test_forged_identity_headers_change_nothing_with_a_token(http_as: HttpAs, customer: str) -> None:
    victims = (await placed(http_as("victim")))["orderId"]
    mallory = http_as(customer)
    assert_status(await mallory.get(f"/v1/orders/{victims}", headers=FORGED_IDENTITY), 404, grpc.StatusCode.NOT_FOUND)
    assert_status(
        await mallory.post(f"/v1/orders/{victims}:cancel", json={}, headers=FORGED_IDENTITY),
        404,
        grpc.StatusCode.NOT_FOUND,
    )
    listed = await mallory.get("/v1/orders", headers=FORGED_IDENTITY)
    assert all(o["customerId"] == customer for o in listed.json()["orders"])
    mine = await mallory.post("/v1/orders", json=order_json(), headers=FORGED_IDENTITY)
    assert mine.status_code == 200, mine.text
    assert mine.json()["customerId"] == customer


# ── The per-customer write limit ──────────────────────────────────────────────────────────────────────


def assert_rate_limited(reply: httpx.Response) -> None:
    message = str(assert_status(reply, 429, grpc.StatusCode.RESOURCE_EXHAUSTED)["message"])
    assert "x-ratelimit-reset" in message, message
    assert reply.headers["x-ratelimit-limit"] == str(SMALL_BURST)
    assert reply.headers["x-ratelimit-remaining"] == "0"
    assert int(reply.headers["x-ratelimit-reset"]) >= 0
    assert "x-envoy-upstream-service-time" not in reply.headers  # order_svc never saw it


async def test_writes_beyond_the_limit_are_429_status_json_per_customer(
    limited_gateway: EnvoyProcess, system: System
) -> None:
    alice, bob = who("rl-alice"), who("rl-bob")
    async with (
        httpx.AsyncClient(base_url=limited_gateway.url, trust_env=False, timeout=15, headers=system.bearer(alice)) as a,
        httpx.AsyncClient(base_url=limited_gateway.url, trust_env=False, timeout=15, headers=system.bearer(bob)) as b,
    ):
        first = await a.post("/v1/orders", json=order_json())
        assert first.status_code == 200, first.text
        assert first.headers["x-ratelimit-limit"] == str(SMALL_BURST)
        assert first.headers["x-ratelimit-remaining"] == str(SMALL_BURST - 1)
        order_id = first.json()["orderId"]
        for _ in range(SMALL_BURST - 1):
            assert (await a.post("/v1/orders", json=order_json())).status_code == 200
        assert_rate_limited(await a.post("/v1/orders", json=order_json()))
        assert_rate_limited(await a.post(f"/v1/orders/{order_id}:cancel", json={}))  # a cancel is a write too
        # Reads are not limited; neither is any other customer.
        assert (await a.get(f"/v1/orders/{order_id}")).status_code == 200
        assert (await a.get("/v1/orders")).status_code == 200
        assert (await b.post("/v1/orders", json=order_json())).status_code == 200


async def test_native_grpc_writes_share_the_limit(limited_gateway: EnvoyProcess, token: TokenFor) -> None:
    carol = bearer(token(who("rl-carol")))
    async with grpc.aio.insecure_channel(limited_gateway.url.removeprefix("http://")) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        for _ in range(SMALL_BURST):
            await stub.CreateOrder(order_request(), metadata=carol, timeout=10)
        call = stub.CreateOrder(order_request(), metadata=carol, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        headers = dict(await call.initial_metadata() or ()) | dict(await call.trailing_metadata() or ())
        assert headers["x-ratelimit-remaining"] == "0"


async def test_a_forged_subject_header_neither_escapes_the_limit_nor_spends_anothers(
    limited_gateway: EnvoyProcess, system: System
) -> None:
    attacker, victim = who("rl-mallory"), who("rl-victim")
    async with (
        httpx.AsyncClient(
            base_url=limited_gateway.url, trust_env=False, timeout=15, headers=system.bearer(attacker)
        ) as mallory,
        httpx.AsyncClient(
            base_url=limited_gateway.url, trust_env=False, timeout=15, headers=system.bearer(victim)
        ) as v,
    ):
        # Every write names the victim as the subject: it is the attacker's own bucket that empties ...
        for _ in range(SMALL_BURST):
            reply = await mallory.post("/v1/orders", json=order_json(), headers={IDENTITY_HEADER: victim})
            assert reply.status_code == 200, reply.text
            assert reply.json()["customerId"] == attacker
        # ... a fresh made-up subject on each try does not refill it ...
        for attempt in range(3):
            spoofed = {IDENTITY_HEADER: f"someone-else-{attempt}", "x-customer-id": f"someone-else-{attempt}"}
            assert_rate_limited(await mallory.post("/v1/orders", json=order_json(), headers=spoofed))
        # ... and the victim's bucket is still full.
        for _ in range(SMALL_BURST):
            assert (await v.post("/v1/orders", json=order_json())).status_code == 200


# ── Malformed headers, signed in or not ───────────────────────────────────────────────────────────────


async def test_an_illegal_header_name_is_a_400_never_a_500(http_as: HttpAs, customer: str) -> None:
    for client in (http_as(None), http_as(customer)):
        for method, path, body in [("GET", "/v1/orders", None), ("POST", "/v1/orders", order_json())]:
            reply = await client.request(method, path, json=body, headers={"x!B": "1"})
            message = str(assert_status(reply, 400, grpc.StatusCode.INVALID_ARGUMENT)["message"])
            assert "x!b" in message, message
