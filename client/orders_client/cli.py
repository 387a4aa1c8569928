"""The ``orders`` command: sign in, then place, get, list, watch and cancel orders from a terminal or a script."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from rich import box
from rich.console import Console
from rich.table import Table

from orders_client._auth import TOKEN_ENV, token_claims
from orders_client._client import DEFAULT_TARGET, TARGET_ENV, OrdersClient
from orders_client._convert import order_json, orders_json
from orders_client._devlogin import DEV_ISSUER, dev_token
from orders_client._errors import (
    DeadlineExceeded,
    FailedPrecondition,
    IdempotencyConflict,
    InvalidOrder,
    NotAuthenticated,
    OrderNotFound,
    OrdersError,
    PermissionDenied,
    Unavailable,
    Unreachable,
)
from orders_client._models import Actor, LineItem, Order, OrderState, OrderStep, RefundState
from orders_client._tokenstore import load_token, remove_token, save_token, token_file

__all__ = ["EXIT_CODES", "main"]

CONNECT_TIMEOUT = 2.0  # seconds to wait for the first connection before saying the service cannot be reached
ISSUER_ENV = "OIDC_ISSUER"
SIGN_IN_TIMEOUT = 10.0  # seconds for the identity provider to sign a customer in

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_NOT_FOUND = 4
EXIT_PRECONDITION = 5
EXIT_CONFLICT = 6
EXIT_UNAVAILABLE = 69
EXIT_TIMEOUT = 75
EXIT_NOPERM = 77
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "any other error (e.g. an internal error of the service)",
    EXIT_USAGE: "bad command line (unknown option, malformed --item)",
    EXIT_INVALID: "the service rejected the input; every bad field is named",
    EXIT_NOT_FOUND: "no such order",
    EXIT_PRECONDITION: "the order's state does not allow it (e.g. cancelling a PAID order)",
    EXIT_CONFLICT: "the idempotency key was already used for a different order",
    EXIT_UNAVAILABLE: "the service (or, for token and login, the identity provider) cannot be reached",
    EXIT_TIMEOUT: "no answer (or no final state) within --timeout",
    EXIT_NOPERM: "not signed in, the token was refused (e.g. expired), or another customer's name was given",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

_ERROR_EXITS: tuple[tuple[type[OrdersError], int], ...] = (
    (InvalidOrder, EXIT_INVALID),
    (OrderNotFound, EXIT_NOT_FOUND),
    (FailedPrecondition, EXIT_PRECONDITION),
    (IdempotencyConflict, EXIT_CONFLICT),
    (NotAuthenticated, EXIT_NOPERM),
    (PermissionDenied, EXIT_NOPERM),
    (Unavailable, EXIT_UNAVAILABLE),
    (DeadlineExceeded, EXIT_TIMEOUT),
)
_ITEM_FIELD = re.compile(r"^order\.line_items\[(\d+)\](?:\.(.+))?$")
_OPTION_OF_FIELD = {
    "order.customer_id": "--customer",
    "order.payment_method": "--payment",
    "order.line_items": "--item",
    "idempotency-key": "--idempotency-key",
}
_STATE_STYLE = {OrderState.CREATED: "yellow", OrderState.PAID: "green", OrderState.CANCELLED: "red"}
_REFUND_TEXT = {
    RefundState.NONE: "none owed",
    RefundState.PENDING: "[yellow]pending[/yellow]",
    RefundState.REFUNDED: "[green]refunded[/green]",
}
_UNREACHABLE_HINT = (
    f"is the stack running? Start it with `make up`, or point --target (or ${TARGET_ENV}) at the service"
)
_PROVIDER_UNREACHABLE_HINT = (
    f"is the stack running? Start it with `make up`, or point --issuer (or ${ISSUER_ENV}) at the identity provider"
)
_EXAMPLE_CUSTOMER = "alice"


@dataclass(frozen=True)
class Credential:
    """The token a command sends, and where it came from (for the messages when it is missing or refused)."""

    token: str
    source: str  # "--token", "$ORDERS_TOKEN", "the login kept in PATH", or "" (none)

    @classmethod
    def find(cls, given: str | None) -> Credential:
        """``--token``, else ``$ORDERS_TOKEN``, else the token ``orders login`` kept, else none."""
        if given:
            return cls(given.strip(), "--token")
        if os.environ.get(TOKEN_ENV, "").strip():
            return cls(os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}")
        try:
            kept = load_token()
        except OSError as error:
            raise NotAuthenticated(f"cannot read the login kept in {token_file()}: {error}") from None
        if kept:
            return cls(kept, f"the login kept in {token_file()}")
        return cls("", "")

    @property
    def subject(self) -> str:
        """The customer the token names (read without checking it: only for messages), or ""."""
        sub = token_claims(self.token).get("sub") if self.token else None
        return sub if isinstance(sub, str) else ""

    @property
    def expired_at(self) -> datetime | None:
        """When the token expired, if it has (by its ``exp`` claim), else None."""
        exp = token_claims(self.token).get("exp") if self.token else None
        if not isinstance(exp, int | float):
            return None
        moment = datetime.fromtimestamp(exp, UTC)
        return moment if moment <= datetime.now(UTC) else None


def _item(text: str) -> str:
    try:
        LineItem.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=argparse.SUPPRESS,
        help=f"host:port of order_svc or the gateway's gRPC listener (default: ${TARGET_ENV} or {DEFAULT_TARGET})",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the API's JSON (proto3 JSON, as the gateway prints it; watch: one object per line)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="give up after this long (default 30; watch: wait without limit)",
    )
    common.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help=f"the bearer token to call with (default: ${TOKEN_ENV}, else the one `orders login` kept)",
    )
    identity = argparse.ArgumentParser(add_help=False)
    identity.add_argument("customer", metavar="CUSTOMER", help="the customer to sign in as, e.g. alice")
    identity.add_argument(
        "--issuer",
        default=os.environ.get(ISSUER_ENV) or DEV_ISSUER,
        metavar="URL",
        help=f"the development identity provider (default: ${ISSUER_ENV}, else {DEV_ISSUER}, as `make up` runs it)",
    )
    identity.add_argument(
        "--role",
        dest="roles",
        action="append",
        default=[],
        metavar="ROLE",
        help="a role to sign in with, e.g. orders:admin (reads every customer's orders); repeat for more",
    )
    epilog = (
        "signing in:\n"
        "  every command but token, login and logout calls with a bearer token: --token, else\n"
        f"  ${TOKEN_ENV}, else the one `orders login CUSTOMER` kept in {token_file()}\n"
        "  (`orders token CUSTOMER` prints one for scripts; both sign in at the development\n"
        "  identity provider that `make up` runs)\n\n"
        "exit codes:\n" + "\n".join(f"  {code:>3}  {what}" for code, what in EXIT_CODES.items())
    )
    parser = argparse.ArgumentParser(
        prog="orders",
        description="Sign in, then place, inspect, watch and cancel your orders.",
        parents=[common],
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "token",
        parents=[identity],
        help="sign CUSTOMER in and print only the bearer token (for $ORDERS_TOKEN or a script)",
        description="Sign CUSTOMER in at the development identity provider and print only the token, on stdout.",
    )
    commands.add_parser(
        "login",
        parents=[identity],
        help="sign CUSTOMER in and keep the token for the next commands",
        description=f"Sign CUSTOMER in and keep the token in {token_file()} (readable by you alone).",
    )
    commands.add_parser("logout", help="forget the token `orders login` kept")

    place = commands.add_parser("place", parents=[common], help="place an order")
    place.add_argument(
        "--customer",
        default="",
        help="not needed: the token names the customer (another customer's id is refused)",
    )
    place.add_argument(
        "--item",
        dest="items",
        action="append",
        required=True,
        type=_item,
        metavar="SKU:QTY:PRICE",
        help="a line item, e.g. SKU-1:2:12.50 (repeat for more items)",
    )
    place.add_argument("--currency", default="USD", help="currency of every price (default USD)")
    place.add_argument("--payment", default="", metavar="METHOD", help="payment method, e.g. pm_card_visa")
    place.add_argument("--idempotency-key", default=None, metavar="KEY", help="reuse to make a retry safe")
    place.add_argument(
        "--wait",
        action="store_true",
        help="wait until the order is settled (PAID, or CANCELLED and its money side known)",
    )

    get = commands.add_parser("get", parents=[common], help="show one order, its refund state and timeline")
    get.add_argument("order_id", metavar="ID")

    list_ = commands.add_parser("list", parents=[common], help="list orders, newest first")
    list_.add_argument(
        "--customer",
        default="",
        help="whose orders (default: yours; only the orders:admin role may name another customer)",
    )
    list_.add_argument("--limit", type=int, default=None, metavar="N", help="at most N orders")

    watch = commands.add_parser("watch", parents=[common], help="print each step of an order until it is settled")
    watch.add_argument("order_id", metavar="ID")

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a CREATED order")
    cancel.add_argument("order_id", metavar="ID")
    cancel.add_argument("--reason", default="", help="why (recorded on the order)")
    return parser


def _dump(data: Any, *, stream: Any = None) -> None:
    """One compact JSON document on one line, flushed (a watch prints as each change arrives)."""
    print(json.dumps(data, ensure_ascii=False, separators=(",", ":")), file=stream or sys.stdout, flush=True)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _step_label(step: OrderStep) -> str:
    return step.kind.value.lower().replace("_", " ")


def _actor(step: OrderStep) -> str:
    return "" if step.actor is Actor.UNSPECIFIED else step.actor.value.lower()


class _Output:
    """Renders results as rich tables or the API's JSON (via :mod:`orders_client._convert`), and errors on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = Console(highlight=False)
        if not self.out.is_terminal and "COLUMNS" not in os.environ:
            self.out.width = 120  # piped: no terminal to fit, keep table rows on one line
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def _state(self, state: OrderState) -> str:
        style = _STATE_STYLE.get(state)
        return f"[{style}]{state.value}[/{style}]" if style else state.value

    def order(self, order: Order) -> None:
        if self.as_json:
            _dump(order_json(order))
            return
        table = Table(title=order.name, show_header=False, title_justify="left")
        table.add_column("field", style="bold")
        table.add_column("value")
        table.add_row("state", self._state(order.state))
        table.add_row("refund", _REFUND_TEXT[order.refund_state])
        table.add_row("customer", order.customer_id)
        table.add_row("total", str(order.total))
        table.add_row("payment method", order.payment_method or "(default)")
        if order.payment_id:
            table.add_row("payment", order.payment_id)
        if order.cancel_reason:
            table.add_row("cancel reason", order.cancel_reason)
        if order.create_time:
            table.add_row("created", _when(order.create_time))
        if order.update_time:
            table.add_row("updated", _when(order.update_time))
        for item in order.line_items:
            table.add_row("item", f"{item.quantity} x {item.sku} @ {item.unit_price}")
        self.out.print(table)
        if order.timeline:
            steps = Table(title="timeline", title_justify="left", box=box.SIMPLE_HEAD)
            for column in ("time", "step", "by", "detail"):
                steps.add_column(column, no_wrap=column != "detail")
            for step in order.timeline:
                steps.add_row(_when(step.time), _step_label(step), _actor(step), step.detail)
            self.out.print(steps)

    def orders(self, orders: Sequence[Order]) -> None:
        if self.as_json:
            _dump(orders_json(orders))
            return
        table = Table(title=f"{len(orders)} order(s)", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("id", "customer", "state", "total", "items", "created"):
            table.add_column(column, no_wrap=column in ("id", "state", "total"))
        for o in orders:
            created = o.create_time.strftime("%Y-%m-%d %H:%M:%S") if o.create_time else ""
            table.add_row(
                o.order_id, o.customer_id, self._state(o.state), str(o.total), str(len(o.line_items)), created
            )
        self.out.print(table)

    def change(self, order: Order, shown: int) -> int:
        """Print what is new in ``order``: its steps after the first ``shown``; returns the steps shown now.

        JSON: the whole order, one object per line. A change without a new step (a service that
        keeps no timeline) prints the order's state instead.
        """
        if self.as_json:
            _dump(order_json(order))
            return len(order.timeline)
        new = order.timeline[shown:]
        for step in new:
            by = f"by {_actor(step)}" if _actor(step) else ""
            parts = [_when(step.time), order.name, _step_label(step), by, step.detail]
            self.out.print("  ".join(part for part in parts if part), markup=False)
        if not new:
            reason = f"  ({order.cancel_reason})" if order.cancel_reason else ""
            self.out.print(f"{_when(order.update_time)}  {order.name}  {self._state(order.state)}{reason}".lstrip())
        return max(shown, len(order.timeline))

    def settled(self, order: Order) -> None:
        """The last line of a watch: ``orders/ID  PAID``, or e.g. ``orders/ID  CANCELLED  refund REFUNDED``."""
        if self.as_json:
            return
        refund = f"  refund {order.refund_state.value}" if order.refund_state is not RefundState.NONE else ""
        self.out.print(f"{order.name}  {self._state(order.state)}{refund}")

    def error(self, error: OrdersError, items: Sequence[str], hint: str = "") -> None:
        kind = type(error).__name__
        violations = getattr(error, "violations", ())
        fields = [v for v in violations if not isinstance(v, str)]
        if self.as_json:
            body: dict[str, Any] = {
                "type": kind,
                "code": error.code.name if error.code else None,
                "reason": error.reason,
                "message": error.message,
            }
            if hint:
                body["hint"] = hint
            if fields:
                body["violations"] = [
                    {"field": v.field, "option": _option(v.field, items), "description": v.description} for v in fields
                ]
            _dump({"error": body}, stream=sys.stderr)
            return
        self.err.print(f"error: {error.message}", markup=False)
        for v in fields:
            self.err.print(f"  {_option(v.field, items)} ({v.field}): {v.description}", markup=False)
        if hint:
            self.err.print(f"  {hint}", markup=False)


def _option(field: str, items: Sequence[str]) -> str:
    """The command-line option behind an API field path, e.g. ``--item #1 (SKU-1:2:12.50) quantity``."""
    if field in _OPTION_OF_FIELD:
        return _OPTION_OF_FIELD[field]
    match = _ITEM_FIELD.match(field)
    if match:
        index = int(match.group(1))
        given = f" ({items[index]})" if index < len(items) else ""
        rest = match.group(2) or ""
        if rest.endswith("currency_code"):
            return "--currency"
        part = rest.split(".")[0].replace("unit_price", "price")
        return f"--item #{index + 1}{given}" + (f" {part}" if part else "")
    return field


def _when_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _not_signed_in(error: NotAuthenticated, credential: Credential) -> NotAuthenticated:
    """The service's UNAUTHENTICATED, said in terms of where the command's token came from."""
    if not credential.token:
        message = f"not signed in: the service needs a token (none given with --token, ${TOKEN_ENV} or `orders login`)"
    else:
        expired = credential.expired_at
        whose = f" for {credential.subject!r}" if credential.subject else ""
        when = f" (it expired at {_when_utc(expired)})" if expired else ""
        message = f"the service refused the token{whose} from {credential.source}{when}: {error.message}"
    return NotAuthenticated(message, reason=error.reason)


def _hint(error: OrdersError, args: argparse.Namespace, credential: Credential) -> str:
    """What to do about ``error``, for the message on stderr (and ``hint`` in the JSON error)."""
    signing_in = args.command in ("token", "login")
    if isinstance(error, Unreachable):
        return _PROVIDER_UNREACHABLE_HINT if signing_in else _UNREACHABLE_HINT
    if isinstance(error, NotAuthenticated):
        if signing_in:
            return (
                f"--issuer (or ${ISSUER_ENV}) must be the development identity provider that `make up` runs; "
                f"with a real provider, sign in with its own tools and pass the token with --token or ${TOKEN_ENV}"
            )
        who = credential.subject or _EXAMPLE_CUSTOMER
        if credential.source in ("--token", f"${TOKEN_ENV}"):
            return f"get a fresh token with `orders token {who}`, or sign in with `orders login {who}`"
        if credential.token:
            return f"sign in again with `orders login {who}` (the stack restarted? its identity provider got new keys)"
        return (
            f"sign in with `orders login {_EXAMPLE_CUSTOMER}` (your customer id; the stack must be running: "
            f"`make up`), or pass --token TOKEN or set ${TOKEN_ENV}"
        )
    if isinstance(error, PermissionDenied):
        signed_in = f"you are signed in as {credential.subject!r}; " if credential.subject else ""
        return f"{signed_in}leave out --customer (the token names the customer), or `orders login` as that customer"
    return ""


async def _sign_in(args: argparse.Namespace, output: _Output) -> int:
    """``orders token``, ``login`` and ``logout``: talk to the identity provider and the token file only."""
    if args.command == "logout":
        path = token_file()
        output.out.print(f"signed out: removed {path}" if remove_token() else "not signed in", markup=False)
        if os.environ.get(TOKEN_ENV):
            output.err.print(f"note: ${TOKEN_ENV} is set, and commands still use it", markup=False)
        return EXIT_OK
    timeout: float = getattr(args, "timeout", None) or SIGN_IN_TIMEOUT
    try:
        token = await asyncio.to_thread(dev_token, args.customer, issuer=args.issuer, roles=args.roles, timeout=timeout)
    except OSError as error:  # refused, unknown host, timed out
        reason = getattr(error, "reason", None) or error
        message = f"cannot reach the identity provider at {args.issuer} ({reason})"
        raise Unreachable(message, target=args.issuer) from None
    except (RuntimeError, ValueError) as error:
        raise NotAuthenticated(f"the identity provider did not sign {args.customer!r} in: {error}") from None
    if args.command == "token":
        print(token, flush=True)
        return EXIT_OK
    path = save_token(token)
    exp = token_claims(token).get("exp")
    until = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
    if output.as_json:
        _dump({"customer": args.customer, "expireTime": _when_utc(until) if until else None, "tokenFile": str(path)})
    else:
        valid = f" until {_when_utc(until)}" if until else ""
        output.out.print(f"signed in as {args.customer}{valid}; the token is kept in {path}", markup=False)
    if os.environ.get(TOKEN_ENV):
        output.err.print(f"note: ${TOKEN_ENV} is set, and commands use it before this login", markup=False)
    return EXIT_OK


async def _run(args: argparse.Namespace, output: _Output, credential: Credential) -> int:
    if args.command in ("token", "login", "logout"):
        return await _sign_in(args, output)
    timeout: float | None = getattr(args, "timeout", None)
    connect = min(CONNECT_TIMEOUT, timeout / 2) if timeout else CONNECT_TIMEOUT  # watch: before --timeout fires
    async with OrdersClient(
        getattr(args, "target", None), token=credential.token, deadline=timeout or 30.0, connect_timeout=connect
    ) as client:
        if args.command == "place":
            order = await client.place_order(
                args.customer,
                [LineItem.parse(text, args.currency) for text in args.items],
                payment_method=args.payment,
                idempotency_key=args.idempotency_key,
            )
            if args.wait:
                order = await client.wait_until_final(order, timeout or 30.0)
            output.order(order)
        elif args.command == "get":
            output.order(await client.get_order(args.order_id))
        elif args.command == "list":
            found: list[Order] = []
            async for order in client.list_orders(args.customer):
                if args.limit is not None and len(found) >= args.limit:
                    break
                found.append(order)
            output.orders(found)
        elif args.command == "watch":
            shown, last = 0, None
            try:
                async with asyncio.timeout(timeout):
                    async for last in client.watch_order(args.order_id):
                        shown = output.change(last, shown)
            except TimeoutError:
                raise DeadlineExceeded(f"orders/{args.order_id} is not settled after {timeout}s") from None
            if last is not None:
                output.settled(last)
        elif args.command == "cancel":
            output.order(await client.cancel_order(args.order_id, args.reason))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``orders`` console script; exits with one of :data:`EXIT_CODES`."""
    args = _parser().parse_args(argv)
    output = _Output(getattr(args, "json", False))
    credential = Credential("", "")
    try:
        if args.command not in ("token", "login", "logout"):
            credential = Credential.find(getattr(args, "token", None))
        code = asyncio.run(_run(args, output, credential))
    except OrdersError as error:
        if isinstance(error, NotAuthenticated) and args.command not in ("token", "login"):
            error = _not_signed_in(error, credential)
        output.error(error, getattr(args, "items", None) or [], _hint(error, args, credential))
        code = next((c for kind, c in _ERROR_EXITS if isinstance(error, kind)), EXIT_ERROR)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)
