"""`taso-tune dashboard`'s proxy against a stand-in dashboard: a plain HTTP server on loopback that
answers only with the token, records what reached it, and can be made to stall or cut an answer.

Only the holder of the printed URL gets through, for this proxy's own host name, to paths under
the dashboard's own address; bad requests and a failing dashboard get a status, never a
traceback. The proxy against a real Ray dashboard is tested in ``test_ray_dashboard.py``.
"""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from taso_tune.cli import main
from taso_tune.cluster import dashboard
from taso_tune.cluster.dashboard import KEY_PARAM, DashboardProxy, Upstream, open_dashboard
from taso_tune.cluster.jobs import Token

TOKEN = "tok-3f9a.secret_value"


@dataclass
class StandIn:
    """The stand-in dashboard: its address, what reached it, and how it answers."""

    url: str
    seen: list[dict] = field(default_factory=list)
    #: "ok"; "stall": send nothing; "cut": promise 100 bytes, send 10 and close
    behaviour: str = "ok"


def _stand_in_handler(state: StandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            state.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_error(401, "Missing authentication token")
                return
            if state.behaviour == "stall":
                threading.Event().wait(2)  # past the proxy's timeout, patched below it
                return
            if state.behaviour == "cut":
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"0123456789")
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = json.dumps({"path": self.path, "host": self.headers["Host"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    state = StandIn("")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _stand_in_handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _serve(address: str) -> tuple[DashboardProxy, threading.Thread]:
    proxy = DashboardProxy(Upstream.parse(address), Token(TOKEN, "test"), port=0)
    thread = threading.Thread(target=proxy.serve_forever)
    thread.start()
    return proxy, thread


@pytest.fixture
def proxy(stand_in: StandIn) -> Iterator[DashboardProxy]:
    served, thread = _serve(stand_in.url)
    try:
        yield served
    finally:
        served.shutdown()
        served.server_close()
        thread.join(timeout=10)


def _port(proxy: DashboardProxy) -> int:
    return proxy.server_address[1]


def _request(
    proxy: DashboardProxy,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request to the proxy; ``headers`` win over the defaults
    (Host: the proxy's own; the proxy's cookie, so the request is logged in)."""
    conn = http.client.HTTPConnection("127.0.0.1", _port(proxy), timeout=30)
    sent = {"Host": f"127.0.0.1:{_port(proxy)}", "Cookie": f"{proxy.cookie_name}={proxy.key}"}
    if body is not None:
        sent["Content-Length"] = str(len(body))
    sent.update(headers or {})
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in sent.items():
        if value is not None:
            conn.putheader(name, value)
    conn.endheaders(body)
    reply = conn.getresponse()
    try:
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def _raw(proxy: DashboardProxy, request: bytes) -> bytes:
    """What the proxy answers to ``request``, sent byte for byte."""
    with socket.create_connection(("127.0.0.1", _port(proxy)), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_only_the_holder_of_the_printed_url_gets_through(
    proxy: DashboardProxy, stand_in: StandIn
) -> None:
    anonymous = {"Cookie": None}
    # what any local user could do with the port alone: run a job through the Jobs API
    assert _request(proxy, "POST", "/api/jobs/", anonymous, b'{"entrypoint": "id"}')[0] == 403
    assert _request(proxy, "GET", "/api/version", anonymous)[0] == 403
    assert _request(proxy, "GET", "/", {"Cookie": f"{proxy.cookie_name}=guessed"})[0] == 403
    assert _request(proxy, "GET", f"/?{KEY_PARAM}=guessed", anonymous)[0] == 403
    assert stand_in.seen == []
    # the printed URL: the key in a cookie the page cannot read, and the page without the key
    url = urllib.parse.urlsplit(proxy.url)
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", _port(proxy), "/")
    assert urllib.parse.parse_qs(url.query) == {KEY_PARAM: [proxy.key]}
    status, headers, _ = _request(proxy, "GET", f"/?{url.query}", anonymous)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{proxy.cookie_name}={proxy.key};")
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    status, headers, _ = _request(proxy, "GET", f"/logs?{url.query}&glob=*.out", anonymous)
    assert status == 303 and headers["Location"] == "/logs?glob=%2A.out"
    assert stand_in.seen == []
    # with the cookie: forwarded with the token, the browser's own cookies kept, the key not
    status, _, body = _request(
        proxy,
        "POST",
        "/api/jobs/",
        {"Cookie": f"theme=dark; {proxy.cookie_name}={proxy.key}", "Authorization": "Bearer x"},
        b"{}",
    )
    assert status == 200 and json.loads(body)["path"] == "/api/jobs/"
    seen = stand_in.seen[-1]["headers"]
    assert seen["Authorization"] == f"Bearer {TOKEN}" and seen["Cookie"] == "theme=dark"
    assert stand_in.seen[-1]["body"] == "{}"


def test_a_request_for_another_host_or_from_another_origin_is_refused(
    proxy: DashboardProxy, stand_in: StandIn
) -> None:
    """DNS rebinding: a page at evil.example, its name made to resolve to 127.0.0.1, sends Host
    evil.example and its own Origin."""
    port = _port(proxy)
    for headers in (
        {"Host": f"evil.example:{port}"},
        {"Host": "127.0.0.1:1"},
        {"Host": None},
        {"Origin": f"http://evil.example:{port}"},
        {"Origin": "null"},
    ):
        assert _request(proxy, "GET", "/api/version", headers)[0] == 403, headers
    assert stand_in.seen == []
    for headers in (
        {},
        {"Host": f"localhost:{port}"},
        {"Origin": f"http://127.0.0.1:{port}"},
        {"Host": f"LOCALHOST:{port}", "Origin": f"http://localhost:{port}"},
    ):
        assert _request(proxy, "GET", "/api/version", headers)[0] == 200, headers
    # the dashboard is always asked for as its own host
    assert {s["headers"]["Host"] for s in stand_in.seen} == {stand_in.url.split("//")[1]}


def test_only_a_path_is_forwarded_and_under_the_dashboards_own_path(
    proxy: DashboardProxy, stand_in: StandIn
) -> None:
    cookie = f"Cookie: {proxy.cookie_name}={proxy.key}\r\n".encode()
    host = f"Host: 127.0.0.1:{_port(proxy)}\r\n".encode()
    for target in (b"http://other.example/", b"//other.example/api", b"*"):
        answer = _raw(proxy, b"GET " + target + b" HTTP/1.0\r\n" + host + cookie + b"\r\n")
        assert answer.startswith(b"HTTP/1.0 400 "), (target, answer[:80])
    assert stand_in.seen == []
    # an address with a path (a load balancer's /ray): every request goes under it
    prefixed, thread = _serve(f"{stand_in.url}/ray/")
    try:
        status, _, body = _request(
            prefixed,
            "GET",
            "/api/version?x=1",
            {"Cookie": f"{prefixed.cookie_name}={prefixed.key}"},
        )
    finally:
        prefixed.shutdown()
        prefixed.server_close()
        thread.join(timeout=10)
    assert status == 200 and json.loads(body)["path"] == "/ray/api/version?x=1"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Length": "abc"}, 400),
        ({"Content-Length": "-5"}, 400),
        ({"Content-Length": "1e3"}, 400),
        ({"Content-Length": str(10**30)}, 400),
        ({"Content-Length": str(dashboard.MAX_BODY_BYTES + 1)}, 413),
        ({"Transfer-Encoding": "chunked"}, 411),
    ],
)
def test_a_bad_body_length_is_answered_without_reaching_the_dashboard(
    proxy: DashboardProxy, stand_in: StandIn, headers: dict[str, str], status: int, capfd
) -> None:
    assert _request(proxy, "POST", "/api/jobs/", headers)[0] == status
    assert stand_in.seen == [] and capfd.readouterr().err == ""


def test_a_dashboard_that_stalls_cuts_its_answer_or_is_gone_is_a_502_without_a_traceback(
    stand_in: StandIn, monkeypatch, capfd
) -> None:
    monkeypatch.setattr(dashboard, "TIMEOUT_S", 0.5)
    served, thread = _serve(stand_in.url)
    try:
        stand_in.behaviour = "stall"
        status, _, body = _request(served, "GET", "/api/version")
        assert status == 502 and b"did not answer" in body
        stand_in.behaviour = "cut"
        with pytest.raises(http.client.IncompleteRead):  # the answer ends where the dashboard's did
            _request(served, "GET", "/api/version")
    finally:
        served.shutdown()
        served.server_close()
        thread.join(timeout=10)
    gone, thread = _serve("http://127.0.0.1:9")  # nothing listens on port 9
    try:
        status, _, body = _request(gone, "GET", "/api/version")
        assert status == 502 and b"did not answer (Connection refused)" in body
    finally:
        gone.shutdown()
        gone.server_close()
        thread.join(timeout=10)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("port", ["-1", "70000", "abc"])
def test_a_port_outside_0_to_65535_is_an_argparse_error(port: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["dashboard", "--address", "http://127.0.0.1:9", "--port", port])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "argument --port" in err and "no Ray dashboard" not in err


def test_a_token_that_cannot_go_in_a_header_is_refused_without_printing_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from taso_tune.cluster.jobs import SweepJobs, find_token

    secret = "first-half\nsecond-half"
    bad = tmp_path / "token"
    bad.write_text(secret + "\n")
    argv = ["--address", "http://127.0.0.1:9", "--token-file", str(bad)]
    for command in (["dashboard", "--port", "0"], ["jobs"], ["stop", "raysubmit_x"]):
        assert main([*command, *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot carry" in err and str(bad) in err, err
        assert "first-half" not in err and "second-half" not in err
    with pytest.raises(Exception) as raised:
        SweepJobs("http://127.0.0.1:9", str(bad))
    assert "--token-file" in str(raised.value) and "half" not in str(raised.value)
    for value in ("with space", "ünïcode", "tab\there"):
        monkeypatch.setenv("RAY_AUTH_TOKEN", value)
        with pytest.raises(Exception, match="RAY_AUTH_TOKEN") as raised:
            find_token()
        assert value not in str(raised.value)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "  fine~token!  ")
    assert find_token() == Token("fine~token!", "RAY_AUTH_TOKEN")


def test_open_dashboard_checks_under_the_address_path_as_the_dashboards_host(
    stand_in: StandIn, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    access = open_dashboard(f"{stand_in.url}/ray", str(token_file), port=0)
    try:
        assert access.proxy is not None and access.url == access.proxy.url
    finally:
        access.proxy.server_close()
    [check] = stand_in.seen
    assert check["path"] == "/ray/api/version"
    assert check["headers"]["Host"] == stand_in.url.split("//")[1]


def test_open_on_a_machine_without_a_browser_says_so(monkeypatch, capsys) -> None:
    """`webbrowser.open` answers False on a headless machine: the user is told to open the URL."""
    import webbrowser

    opened: list[str] = []

    def no_browser(url: str) -> bool:
        opened.append(url)
        return False

    monkeypatch.setattr(
        dashboard, "open_dashboard", lambda *args: dashboard.DashboardAccess("http://h:8265", None)
    )
    monkeypatch.setattr(webbrowser, "open", no_browser)
    assert main(["dashboard", "--open"]) == 0
    assert opened == ["http://h:8265/"]
    assert capsys.readouterr().out.splitlines() == [
        "dashboard: http://h:8265/ (no token needed)",
        "no web browser could be opened here: open the URL above yourself",
    ]
    monkeypatch.setattr(webbrowser, "open", lambda url: True)
    assert main(["dashboard", "--open"]) == 0
    assert "no web browser" not in capsys.readouterr().out
