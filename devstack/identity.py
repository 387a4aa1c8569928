"""The development OpenID Connect provider (PyPI oidc-provider-mock) as a process, and tokens from it."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from devstack.procs import child_process_options, free_port, orphan_safe, stop_process, wait_for_port
from orders_client._devlogin import DEV_CLIENT_ID, DEV_ISSUER, dev_token

__all__ = ["AUDIENCE", "DEV_ISSUER", "OidcProvider", "dev_token"]

#: The audience the gateway and order_svc accept: the client id the web page and the CLI sign in with.
AUDIENCE = DEV_CLIENT_ID


class OidcProvider:
    """oidc-provider-mock on 127.0.0.1 (discovery, JWKS, a login form that signs in any subject).

    Its keys are made fresh at every start, so tokens from an earlier run are refused.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def env(self) -> dict[str, str]:
        """What order_svc (and the gateway) need to trust this provider."""
        return {"OIDC_ISSUER": self.issuer, "OIDC_AUDIENCE": AUDIENCE}

    def start(self) -> OidcProvider:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = (self.workdir / "oidc-provider.log").open("ab")
        # Its libraries' deprecation warnings would only clutter `make up`'s log.
        command = [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "oidc_provider_mock"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            orphan_safe(command), stdout=self._log, stderr=subprocess.STDOUT, **child_process_options()
        )
        wait_for_port(self.port, timeout=30, proc=self.proc)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.issuer}/.well-known/openid-configuration", timeout=5) as reply:
            reply.read()
        return self

    def token(self, customer: str, roles: Sequence[str] = ()) -> str:
        """A bearer token for ``customer`` (signed in through the login form, as a person would)."""
        return dev_token(customer, issuer=self.issuer, roles=roles)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
