"""``taso-tune dashboard``: the cluster's Ray dashboard in a browser, without pasting its token."""

from __future__ import annotations

import argparse
import webbrowser

from taso_tune.cli.help_format import HelpFormatter
from taso_tune.cli.jobs import add_cluster_flags


def port_number(text: str) -> int:
    """``--port``: a TCP port, 0 to 65535 (argparse reports anything else and exits 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535 (got {port})")
    return port


def add_dashboard_parser(sub: argparse._SubParsersAction) -> None:
    from taso_tune.cluster.dashboard import DEFAULT_PORT

    p = sub.add_parser(
        "dashboard",
        help="open the cluster's Ray dashboard without pasting its token",
        description=(
            "A dashboard with token authentication asks for the token in the page, and no URL can "
            "carry it. This serves the dashboard on http://127.0.0.1:PORT/ and forwards each "
            "request with the token (found as for `taso-tune jobs`), so the browser never asks; "
            "it prints a URL that carries a key made for this run (?taso_key=...) and runs until "
            "Ctrl-C. Opening that URL gives the browser the key as a cookie; a request with "
            "neither is refused, as is one whose Host or Origin is not this proxy. Anyone who has "
            "the printed URL uses the dashboard as the token's holder: do not share it. A "
            "dashboard without token authentication needs none of this: its own URL is printed "
            "and the command ends."
        ),
        formatter_class=HelpFormatter,
    )
    add_cluster_flags(p)
    p.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help="local port to serve on, 0 to 65535 (default %(default)s; 0: any free port)",
    )
    p.add_argument("--open", action="store_true", help="also open the URL in a web browser")
    p.set_defaults(handler=run_dashboard)


def _open(url: str) -> None:
    """Open ``url`` in a web browser, or say there is none (a headless machine, an SSH session)."""
    if not webbrowser.open(url):
        print("no web browser could be opened here: open the URL above yourself", flush=True)


def run_dashboard(args: argparse.Namespace) -> int:
    from taso_tune.cluster.dashboard import open_dashboard

    access = open_dashboard(args.address, args.token_file, args.port)
    if access.proxy is None:
        print(f"dashboard: {access.url} (no token needed)", flush=True)
        if args.open:
            _open(access.url)
        return 0
    print(f"dashboard: {access.url} (forwards to {access.address} with the token)", flush=True)
    print("anyone with this URL uses the dashboard as the token's holder", flush=True)
    print("press Ctrl-C to stop", flush=True)
    if args.open:
        _open(access.url)
    try:
        access.proxy.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        access.proxy.server_close()
    return 0
