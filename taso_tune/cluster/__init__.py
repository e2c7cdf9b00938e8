"""The offline cluster check: ``ray up`` configs and KubeRay manifests, checked without contacting
a cloud or a cluster (``taso-tune check-cluster``)."""

from taso_tune.cluster.check import check_cluster_file

__all__ = ["check_cluster_file"]
