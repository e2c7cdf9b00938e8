"""Working with a Ray cluster: the offline check of ``ray up`` configs and KubeRay manifests
(``taso-tune check-cluster``), sweeps as Ray Jobs on its dashboard (``jobs``), and that dashboard in a
browser with the token sent for you (``dashboard``)."""

from taso_tune.cluster.check import check_cluster_file

__all__ = ["check_cluster_file"]
