"""``taso-tune check-cluster``: check Ray cluster files offline before ``ray up`` or ``kubectl apply``."""

from __future__ import annotations

import argparse
import sys


def add_check_cluster_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-cluster",
        help="check Ray cluster launcher configs and KubeRay manifests offline",
        description=(
            "Check Ray cluster files without contacting a cloud: launcher configs (cluster/*.yaml) with "
            "Ray's own schema and defaults, KubeRay manifests (cluster/kuberay/*.yaml), and taso-tune's "
            "rules: the exact Ray version, integer GPU resources, shared storage, no exposed dashboard, "
            "token authentication on. Prints one line per problem and exits 2 when any is found."
        ),
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="a cluster launcher YAML or a KubeRay manifest"
    )
    p.set_defaults(handler=run_check_cluster)


def run_check_cluster(args: argparse.Namespace) -> int:
    from taso_tune.cluster.check import check_cluster_file

    failed = False
    for path in args.files:
        problems = check_cluster_file(path)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            failed = True
        else:
            print(f"{path}: ok")
    return 2 if failed else 0
