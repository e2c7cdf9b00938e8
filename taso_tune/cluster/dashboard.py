"""The Ray dashboard in a browser without pasting the token: a local proxy that sends it.

Ray 2.60's dashboard, with token authentication on, answers a request that carries the token in an
``Authorization: Bearer`` header, an ``X-Ray-Authorization`` header or the
``ray-authentication-token`` cookie. Its page asks for the token and sets that cookie through
``POST /api/authenticate``, which reads the token from a header only, so no URL can carry it. The
proxy listens on a loopback port and forwards every request to the dashboard with the token's
``Authorization`` header; the browser never sees the token. Anyone who can reach that port on this
machine uses the dashboard as the token's holder, as with the token file itself.

Without token authentication the dashboard needs no proxy: :func:`open_dashboard` says so and gives
its own address.
"""

from __future__ import annotations

import http.client
import http.server
import shutil
import urllib.parse
from dataclasses import dataclass

from taso_tune.cluster.jobs import (
    Token,
    dashboard_address,
    find_token,
    no_dashboard,
    token_missing,
    token_refused,
)
from taso_tune.core.errors import ConfigError

#: Where the proxy listens unless told otherwise (the dashboard's own default is 8265).
DEFAULT_PORT = 8266
#: A request the dashboard answers with its version, behind its token check.
CHECK_PATH = "/api/version"
#: Headers that belong to one connection and are not forwarded (RFC 9110, section 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
#: What the proxy replaces: the token is its own, whatever the browser sent.
AUTH_HEADERS = {"authorization", "x-ray-authorization", "host"}
TIMEOUT_S = 60


@dataclass(frozen=True)
class Upstream:
    """The dashboard a proxy forwards to."""

    address: str
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, address: str) -> Upstream:
        parts = urllib.parse.urlsplit(address if "://" in address else f"http://{address}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("--address", address, "must be http://HOST:PORT or https://HOST:PORT")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError("--address", address, "the port is not a number") from None
        return cls(address, parts.scheme, parts.hostname, port)

    def connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=TIMEOUT_S)


def check_access(upstream: Upstream, token: Token | None) -> None:
    """Ask the dashboard for its version with ``token`` (none: without one).

    Raises:
        ConfigError: no dashboard answers there, or it asks for a token and none was found, or it
            refused this one.
    """
    conn = upstream.connection()
    headers = {"Authorization": f"Bearer {token.value}"} if token else {}
    try:
        conn.request("GET", CHECK_PATH, headers=headers)
        status = conn.getresponse().status
    except OSError:
        raise no_dashboard(upstream.address) from None
    finally:
        conn.close()
    if status in (401, 403):
        if token is None:
            raise token_missing(upstream.address)
        raise token_refused(token, upstream.address, refused=status == 403)
    if status != 200:
        raise no_dashboard(upstream.address)


class _Forward(http.server.BaseHTTPRequestHandler):
    """One request, forwarded with the token; HTTP/1.0, so the reply ends when the connection does
    and a streamed answer (a log being followed) passes through as it comes."""

    # set on the subclass each DashboardProxy makes of this handler

    upstream: Upstream
    token: Token

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in HOP_BY_HOP | AUTH_HEADERS
        }
        headers["Authorization"] = f"Bearer {self.token.value}"
        conn = self.upstream.connection()
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            reply = conn.getresponse()
        except OSError as err:
            conn.close()
            self.send_error(502, f"the dashboard at {self.upstream.address} did not answer ({err})")
            return
        try:
            self.send_response(reply.status, reply.reason)
            for name, value in reply.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.end_headers()
            shutil.copyfileobj(reply, self.wfile, 64 * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        finally:
            conn.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _forward

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a dashboard page makes a request a second."""


class DashboardProxy(http.server.ThreadingHTTPServer):
    """Serves ``upstream`` on ``127.0.0.1:port`` (``0``: a free port), adding ``token``."""

    daemon_threads = True

    def __init__(self, upstream: Upstream, token: Token, port: int = DEFAULT_PORT) -> None:
        handler = type("Forward", (_Forward,), {"upstream": upstream, "token": token})
        try:
            super().__init__(("127.0.0.1", port), handler)
        except OSError as err:
            raise ConfigError(
                "--port", port, f"cannot listen there ({err.strerror}); pass another, 0 for any"
            ) from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


@dataclass(frozen=True)
class DashboardAccess:
    """How to open a cluster's dashboard: its own URL, or a proxy's that sends the token."""

    address: str
    proxy: DashboardProxy | None

    @property
    def url(self) -> str:
        return self.proxy.url if self.proxy else f"{self.address}/"


def open_dashboard(
    address: str | None = None, token_file: str | None = None, port: int = DEFAULT_PORT
) -> DashboardAccess:
    """Check the dashboard at ``address`` (default: ``RAY_API_SERVER_ADDRESS``, else a local
    head's) and, when it asks for a token, make (not yet start: ``serve_forever``) a proxy for it
    on ``port``; the token is found as :func:`~taso_tune.cluster.jobs.find_token` finds it."""
    upstream = Upstream.parse(dashboard_address(address))
    token = find_token(token_file)
    check_access(upstream, token)
    if token is None:  # the dashboard answered without one: it has no token authentication
        return DashboardAccess(upstream.address, None)
    return DashboardAccess(upstream.address, DashboardProxy(upstream, token, port))
