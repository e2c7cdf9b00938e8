"""A Prometheus that scrapes a Ray cluster's metrics, on localhost only (``make metrics``).

Every Ray head keeps a service-discovery file listing each node's metrics export port
(``<temp-dir>/prom_metrics_service_discovery.json``, ``/tmp/ray`` unless ``ray start --temp-dir``
says otherwise); a Prometheus given that file finds every node as nodes come and go. The config
written here is Ray's own (``session_latest/metrics/prometheus/prometheus.yml``) with a shorter
scrape interval, so the per-epoch gauges of short trials are seen, and Prometheus listens on
127.0.0.1 only: its HTTP API has no authentication.

    python -m taso_tune.cluster.prometheus [--ray-temp-dir /tmp/ray] [--port 9090]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence

DISCOVERY_FILE = "prom_metrics_service_discovery.json"
DEFAULT_RAY_TEMP_DIR = "/tmp/ray"
DEFAULT_PORT = 9090
DEFAULT_SCRAPE_INTERVAL = "5s"
INSTALL_HINT = (
    "install Debian's package: apt-get install prometheus (`make metrics` does when root)"
)


def discovery_file(ray_temp_dir: str = DEFAULT_RAY_TEMP_DIR) -> str:
    """The service-discovery file the Ray head with this ``--temp-dir`` keeps up to date."""
    return os.path.join(ray_temp_dir, DISCOVERY_FILE)


def prometheus_config(discovery: str, scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> str:
    """Prometheus's YAML config: one ``ray`` job whose targets come from ``discovery``."""
    return (
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        "scrape_configs:\n"
        "  - job_name: ray\n"
        "    file_sd_configs:\n"
        f"      - files: ['{discovery}']\n"
        "        refresh_interval: 5s\n"
    )


def prometheus_command(
    config_file: str, data_dir: str, port: int = DEFAULT_PORT, binary: str = "prometheus"
) -> list[str]:
    """The command line of a Prometheus serving on 127.0.0.1:``port`` only."""
    return [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=15d",
    ]


def write_config(
    folder: str,
    ray_temp_dir: str = DEFAULT_RAY_TEMP_DIR,
    scrape_interval: str = DEFAULT_SCRAPE_INTERVAL,
) -> str:
    """Write ``prometheus.yml`` into ``folder`` (created) and return its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "prometheus.yml")
    with open(path, "w") as fh:
        fh.write(prometheus_config(discovery_file(ray_temp_dir), scrape_interval))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m taso_tune.cluster.prometheus",
        description="Run Prometheus on 127.0.0.1, scraping the Ray cluster "
        "whose head uses --ray-temp-dir.",
    )
    parser.add_argument(
        "--ray-temp-dir",
        default=DEFAULT_RAY_TEMP_DIR,
        help="the head's --temp-dir (default /tmp/ray)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="Prometheus's port (default 9090)"
    )
    parser.add_argument(
        "--folder",
        default="runs/prometheus",
        help="config and data folder (default runs/prometheus)",
    )
    parser.add_argument("--scrape-interval", default=DEFAULT_SCRAPE_INTERVAL)
    args = parser.parse_args(argv)
    binary = shutil.which("prometheus")
    if binary is None:
        print(f"prometheus: not found; {INSTALL_HINT}", file=sys.stderr)
        return 2
    discovery = discovery_file(args.ray_temp_dir)
    if not os.path.exists(discovery):
        print(
            f"warning: {discovery} does not exist yet: start the head (`ray start --head`) and Prometheus "
            "finds its nodes once Ray writes it",
            file=sys.stderr,
        )
    config = write_config(args.folder, args.ray_temp_dir, args.scrape_interval)
    command = prometheus_command(config, os.path.join(args.folder, "data"), args.port, binary)
    print(
        f"Prometheus on http://127.0.0.1:{args.port} scraping the nodes in {discovery} (Ctrl-C stops it)",
        flush=True,
    )
    os.execv(binary, command)
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())
