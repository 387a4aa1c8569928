"""Schemathesis hooks for tests/e2e/test_openapi_fuzz.py (loaded by the CLI through ``SCHEMATHESIS_HOOKS``).

One check of our own, beside Schemathesis's: every 4xx is a ``google.rpc.Status`` JSON whose message a person
can act on (not empty, not the protobuf JSON parser's or the transcoder's jargon).
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response

#: Words of Envoy's transcoder and protobuf's JSON parser that the gateway rewrites into what to fix.
JARGON = ("Proto field", "Root element must be", "Could not resolve", "TYPE_", "type.googleapis.com/")


@schemathesis.check
def actionable_status_json(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A 4xx is application/json ``google.rpc.Status`` with a code and a message worth reading."""
    if not 400 <= response.status_code < 500 or case.method.upper() == "HEAD":
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/json"):
        raise AssertionError(f"{response.status_code} is {content_type!r}, not google.rpc.Status JSON")
    try:
        status = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from error
    if not isinstance(status, dict) or not isinstance(status.get("code"), int) or status["code"] == 0:
        raise AssertionError(f"{response.status_code} body is not a google.rpc.Status: {status!r}")
    message = status.get("message")
    if not isinstance(message, str) or not message.strip():
        raise AssertionError(f"{response.status_code} google.rpc.Status without a message: {status!r}")
    jargon = [word for word in JARGON if word in message]
    if jargon:
        raise AssertionError(f"{response.status_code} message speaks the parser's words {jargon}: {message!r}")
    return None
