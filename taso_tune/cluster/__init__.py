"""Working with a Ray cluster: the offline check of ``ray up`` configs and KubeRay manifests
(``taso-tune check-cluster``) and sweeps as Ray Jobs on its
dashboard (``jobs``)."""

from taso_tune.cluster.check import check_cluster_file

__all__ = ["check_cluster_file"]
