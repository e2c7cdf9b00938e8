"""Offline checks for the files that start Ray clusters: ``ray up`` configs and KubeRay manifests.

Nothing here contacts a cloud or a cluster. :func:`check_cluster_file` returns one line per
problem, each naming the file, the key path and the bad value.

**Ray cluster launcher configs** (``cluster/aws-gpu.yaml``, ``gcp-gpu.yaml``, ``onprem.yaml``) first
go through the steps ``ray up`` itself runs before it talks to a provider: Ray's
``prepare_config`` (merges the provider's ``defaults.yaml``, so a key the file leaves out is
checked with the value Ray would use) and ``validate_config`` (``ray-schema.json`` and the
node-type rules). Then taso-tune's rules:

* Ray pinned: the setup commands ``pip install "ray[...]==X"`` with X the Ray version installed
  here; an unpinned install, another version or a wheel URL is a problem.
* Resources: every declared node resource is an integer; every worker node type declares
  ``GPU`` >= 1; the head declares ``CPU: 0`` and ``GPU: 0`` (it runs the Tune driver and the
  autoscaler, never a trial); ``head_node_type`` names one of ``available_node_types``.
* Storage: the head's ``ray start`` command sets ``TASO_TUNE_STORAGE=LOCATION`` (Ray Jobs inherit
  it), and LOCATION is shared storage for the cluster's size (:func:`taso_tune.core.storage.require_shared_storage`).
* Security: no ``--dashboard-host`` other than localhost; no security-group rule opens 6379, 8265
  or 10001 to 0.0.0.0/0 or ::/0; every ``ray start`` runs with ``RAY_AUTH_MODE=token``, nothing
  sets another mode, and ``file_mounts`` copies the token to ``~/.ray/auth_token`` on every node.

**KubeRay manifests** (``apiVersion: ray.io/v1``, kind ``RayCluster`` or ``RayJob``): a head group
and worker groups (``replicas``/``minReplicas``/``maxReplicas``) with containers that name an
image; ``rayVersion`` and every image tag pinned to the installed Ray version (the tag starts with
it, e.g. ``2.60.0-py311-gpu``); ``nvidia.com/gpu`` limits are integers; ``authOptions.mode: token``
and no container sets another ``RAY_AUTH_MODE``; no Service of type LoadBalancer/NodePort, no
ingress and no ``dashboard-host: 0.0.0.0``; storage as above (a RayCluster's head container sets
``TASO_TUNE_STORAGE``; a RayJob's entrypoint runs ``taso-tune sweep ... --storage LOCATION``).
"""

from __future__ import annotations

import yaml

from taso_tune.cluster.kuberay import check_kuberay
from taso_tune.cluster.launcher import check_launcher
from taso_tune.cluster.rules import NOT_A_CLUSTER_FILE, line


def check_cluster_file(path: str) -> list[str]:
    """Problems of one launcher config or KubeRay manifest (see the module docstring)."""
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as err:
        return [f"{path}: cannot read: {err}"]
    except UnicodeDecodeError:
        return [f"{path}: cannot read: not a text (UTF-8) file"]
    if any(
        isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("ray.io/") for d in docs
    ):
        found = check_kuberay(docs)
    elif len(docs) == 1 and isinstance(docs[0], dict) and "apiVersion" not in docs[0]:
        found = check_launcher(docs[0])
    else:
        found = [("", None, NOT_A_CLUSTER_FILE)]
    return [line(path, key, value, text) for key, value, text in found]
