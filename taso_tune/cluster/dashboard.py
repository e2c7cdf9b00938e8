"""The Ray dashboard in a browser without pasting the token: a local proxy that sends it.

Ray 2.60's dashboard, with token authentication on, answers a request that carries the token in an
``Authorization: Bearer`` header, an ``X-Ray-Authorization`` header or the
``ray-authentication-token`` cookie. Its page asks for the token and sets that cookie through
``POST /api/authenticate``, which reads the token from a header only, so no URL can carry it. The
proxy listens on a loopback port and forwards requests to the dashboard with the token's
``Authorization`` header; the browser never sees the token.

The port alone lets no one in: every other user of the machine can reach a loopback port. Each
proxy makes a random key, and its URL carries it once (``/?taso_key=KEY``); that request gets the
key back as an HttpOnly, SameSite=Strict cookie and a redirect to the page, and every request
without the cookie (or the key) is refused with 403. Whoever holds that URL uses the dashboard as
the token's holder. A request is also refused unless it names this proxy as its ``Host`` (and
``Origin``, when it has one), so a web page whose name is made to resolve to 127.0.0.1 (DNS
rebinding) cannot use the browser's cookie; and only a path is forwarded, always to the dashboard's
own host, under the path the dashboard's address has.

Without token authentication the dashboard needs no proxy: :func:`open_dashboard` says so and gives
its own address.
"""

from __future__ import annotations

import hmac
import http.client
import http.server
import re
import secrets
import shutil
import sys
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
#: The address the proxy binds: loopback only.
LISTEN_HOST = "127.0.0.1"
#: A request the dashboard answers with its version, behind its token check.
CHECK_PATH = "/api/version"
#: The query parameter of the URL the proxy prints, which carries its key once.
KEY_PARAM = "taso_key"
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
#: What the proxy replaces: the token is its own, whatever the browser sent, and the host is the
#: dashboard's.
AUTH_HEADERS = {"authorization", "x-ray-authorization", "host"}
#: The largest request body forwarded (the dashboard's own requests are small JSON).
MAX_BODY_BYTES = 16 * 1024 * 1024
TIMEOUT_S = 60


@dataclass(frozen=True)
class Upstream:
    """The dashboard a proxy forwards to; ``prefix`` is its address's path (``https://lb/ray``:
    ``/ray``), put before every forwarded path."""

    address: str
    scheme: str
    host: str
    port: int
    prefix: str = ""

    @classmethod
    def parse(cls, address: str) -> Upstream:
        parts = urllib.parse.urlsplit(address if "://" in address else f"http://{address}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("--address", address, "must be http://HOST:PORT or https://HOST:PORT")
        if parts.query or parts.fragment:
            raise ConfigError("--address", address, "must have no query or fragment (?, #)")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError("--address", address, "the port is not a number") from None
        return cls(address, parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        """The ``Host`` every forwarded request carries."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

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
    headers = {"Host": upstream.host_header}
    if token:
        headers["Authorization"] = f"Bearer {token.value}"
    try:
        conn.request("GET", upstream.prefix + CHECK_PATH, headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException):
        raise no_dashboard(upstream.address) from None
    except ValueError:
        # http.client's message quotes the offending header, which may be the token's
        raise ConfigError(
            "--address", upstream.address, "cannot be put in a request (a character HTTP forbids)"
        ) from None
    finally:
        conn.close()
    if status in (401, 403):
        if token is None:
            raise token_missing(upstream.address)
        raise token_refused(token, upstream.address, refused=status == 403)
    if status != 200:
        raise no_dashboard(upstream.address)


class _Refused(Exception):
    """A request the proxy answers itself, with ``status`` and a fixed ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Forward(http.server.BaseHTTPRequestHandler):
    """One request, checked, then forwarded with the token; HTTP/1.0, so the reply ends when the
    connection does and a streamed answer (a log being followed) passes through as it comes."""

    server: DashboardProxy
    #: a browser that opens a connection and sends nothing does not hold a thread for ever
    timeout = TIMEOUT_S

    def _forward(self) -> None:
        try:
            self._check_target()
            self._check_origin()
            if self._logged_in_by_key():
                return
            self._check_cookie()
            body = self._body()
        except _Refused as refused:
            self._answer_error(refused.status, refused.reason)
            return
        self._pass_on(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _forward

    def _check_target(self) -> None:
        # an absolute URL (``GET http://elsewhere/``) would make http.client send the token there;
        # the request line as sent, since http.server already folds a leading ``//`` into ``/``
        words = self.requestline.split()
        target = words[1] if len(words) > 1 else ""
        if not target.startswith("/") or target.startswith("//"):
            raise _Refused(400, "only a path (/...) is forwarded")

    def _check_origin(self) -> None:
        host = (self.headers.get("Host") or "").lower()
        if host not in self.server.own_hosts:
            raise _Refused(403, "the Host is not this proxy")
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower() not in self.server.own_origins:
            raise _Refused(403, "the Origin is not this proxy")

    def _logged_in_by_key(self) -> bool:
        """Answer the URL that carries the key with its cookie and the same URL without the key."""
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qsl(query, keep_blank_values=True)
        keys = [value for name, value in params if name == KEY_PARAM]
        if not keys:
            return False
        if not all(self.server.holds_key(key) for key in keys):
            raise _Refused(403, "wrong key")
        rest = urllib.parse.urlencode([(n, v) for n, v in params if n != KEY_PARAM])
        self.send_response(303)
        self.send_header("Location", f"{path}?{rest}" if rest else path)
        self.send_header(
            "Set-Cookie",
            f"{self.server.cookie_name}={self.server.key}; Path=/; HttpOnly; SameSite=Strict",
        )
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def _check_cookie(self) -> None:
        if not any(self.server.holds_key(value) for value in self._own_cookies()):
            raise _Refused(403, f"open the URL taso-tune dashboard printed (it has ?{KEY_PARAM}=)")

    def _own_cookies(self) -> list[str]:
        found = []
        for header in self.headers.get_all("Cookie") or []:
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name == self.server.cookie_name:
                    found.append(value)
        return found

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            raise _Refused(411, "send the body with a Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        if not re.fullmatch(r"\d{1,20}", length.strip()):
            raise _Refused(400, "bad Content-Length")
        size = int(length)
        if size > MAX_BODY_BYTES:
            raise _Refused(413, f"request body over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(size) if size else b""

    def _forwarded_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            lower = name.lower()
            if lower in HOP_BY_HOP | AUTH_HEADERS or lower == "content-length":
                continue
            if lower == "cookie":  # the dashboard gets the browser's cookies, not the proxy's key
                kept = [
                    pair.strip()
                    for pair in value.split(";")
                    if pair.strip().partition("=")[0] != self.server.cookie_name
                ]
                value = "; ".join(kept)
                if not value:
                    continue
            headers[name] = value
        headers["Host"] = self.server.upstream.host_header
        headers["Authorization"] = f"Bearer {self.server.token.value}"
        return headers

    def _pass_on(self, body: bytes | None) -> None:
        upstream = self.server.upstream
        conn = upstream.connection()
        try:
            try:
                conn.request(
                    self.command,
                    upstream.prefix + self.path,
                    body=body,
                    headers=self._forwarded_headers(),
                )
                reply = conn.getresponse()
            except (OSError, http.client.HTTPException) as err:
                why = getattr(err, "strerror", None) or type(err).__name__
                self._answer_error(
                    502, f"the dashboard at {upstream.address} did not answer ({why})"
                )
                return
            except ValueError:
                # http.client's message quotes the header it refused; never echo headers
                self._answer_error(400, "the request has a header that cannot be forwarded")
                return
            self.send_response(reply.status, reply.reason)
            for name, value in reply.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.end_headers()
            shutil.copyfileobj(reply, self.wfile, 64 * 1024)
        except (OSError, http.client.HTTPException):
            # the browser went away, or the dashboard stopped mid-answer (a followed log left idle
            # past the timeout): the status line has gone out, so the connection just ends
            pass
        finally:
            conn.close()

    def _answer_error(self, status: int, reason: str) -> None:
        try:
            self.send_error(status, reason)
        except OSError:
            pass  # the browser went away

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a dashboard page makes a request a second."""


class DashboardProxy(http.server.ThreadingHTTPServer):
    """Serves ``upstream`` on ``127.0.0.1:port`` (``0``: a free port), adding ``token``, to the
    holder of its :attr:`url`."""

    daemon_threads = True

    def __init__(self, upstream: Upstream, token: Token, port: int = DEFAULT_PORT) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError("--port", port, "must be from 0 to 65535")
        self.upstream = upstream
        self.token = token
        self.key = secrets.token_urlsafe(32)
        try:
            super().__init__((LISTEN_HOST, port), _Forward)
        except OSError as err:
            raise ConfigError(
                "--port", port, f"cannot listen there ({err.strerror}); pass another, 0 for any"
            ) from None
        bound = self.server_address[1]
        # cookies are kept per host, not per port: one name per port keeps two proxies apart
        self.cookie_name = f"taso_tune_proxy_{bound}"
        self.own_hosts = {f"{LISTEN_HOST}:{bound}", f"localhost:{bound}"}
        if bound == 80:
            self.own_hosts |= {LISTEN_HOST, "localhost"}
        self.own_origins = {f"http://{host}" for host in self.own_hosts}

    def holds_key(self, value: str) -> bool:
        return hmac.compare_digest(value.encode(), self.key.encode())

    def handle_error(self, request: object, client_address: object) -> None:
        """A browser that drops its connection while the request is read is no error."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """The proxy's address with its key: whoever opens it uses the dashboard as the token's
        holder."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/?{KEY_PARAM}={self.key}"


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
