"""The shipped cluster files pass the offline check; each broken variant fails with its own message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from taso_tune.cli import main
from taso_tune.cluster.check import check_cluster_file
from taso_tune.cluster.rules import MIN_DRIVER_FOR_CUDA, torch_cuda
from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import require_shared_storage

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cluster").rglob("*.yaml"))
AWS = ROOT / "cluster" / "aws-gpu.yaml"
GCP = ROOT / "cluster" / "gcp-gpu.yaml"
RAYCLUSTER = ROOT / "cluster" / "kuberay" / "raycluster.yaml"
RAYJOB = ROOT / "cluster" / "kuberay" / "rayjob.yaml"
VERSION = ray.__version__


@pytest.fixture(autouse=True)
def _no_shared_storage_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASO_TUNE_SHARED_STORAGE", raising=False)


def broken(tmp_path: Path, source: Path, change: Callable[[Any], None]) -> str:
    """``source`` with ``change`` applied to its YAML documents, written to tmp_path."""
    docs = list(yaml.safe_load_all(source.read_text()))
    change(docs if len(docs) > 1 else docs[0])
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def problems_of(path: str) -> str:
    return "\n".join(check_cluster_file(path))


def test_cluster_folder_has_every_kind_of_file() -> None:
    assert {
        "cluster/aws-gpu.yaml",
        "cluster/gcp-gpu.yaml",
        "cluster/onprem.yaml",
        "cluster/kuberay/raycluster.yaml",
        "cluster/kuberay/rayjob.yaml",
    } <= set(CLUSTER_FILES)


@pytest.mark.parametrize("path", CLUSTER_FILES)
def test_shipped_file_passes(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert check_cluster_file(path) == []


def test_cli_passes_every_shipped_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["check-cluster", *CLUSTER_FILES]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}: ok" for path in CLUSTER_FILES]


def test_cli_fails_with_two_on_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = broken(
        tmp_path, AWS, lambda c: c["available_node_types"]["gpu_1x"]["resources"].update(GPU=0.5)
    )
    assert main(["check-cluster", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{path}: available_node_types.gpu_1x.resources.GPU: must be an integer (got 0.5)"
    ]


def test_kuberay_image_pins_the_installed_ray() -> None:
    dockerfile = (ROOT / "cluster" / "kuberay" / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{VERSION}-py311-gpu" in dockerfile
    assert f'"ray[default,tune]=={VERSION}"' in dockerfile


# ---------------------------------------------------------------- launcher configs


def _set_setup(command: str) -> Callable[[dict], None]:
    return lambda c: c.update(setup_commands=[command])


def _set_head_start(c: dict, old: str, new: str) -> None:
    c["head_start_ray_commands"][1] = c["head_start_ray_commands"][1].replace(old, new)


LAUNCHER_CASES = {
    "fractional GPU": (
        lambda c: c["available_node_types"]["gpu_1x"]["resources"].update(GPU=0.5),
        "available_node_types.gpu_1x.resources.GPU: must be an integer (got 0.5)",
    ),
    "no GPU on a worker type": (
        lambda c: c["available_node_types"]["gpu_8x"]["resources"].pop("GPU"),
        "available_node_types.gpu_8x.resources.GPU: a worker node type must declare its GPU count",
    ),
    "trials allowed on the head": (
        lambda c: c["available_node_types"]["head_cpu"]["resources"].update(CPU=8),
        "available_node_types.head_cpu.resources.CPU: the head must offer 0",
    ),
    "missing provider": (
        lambda c: c.pop("provider"),
        "provider: Ray's cluster schema: 'provider' is a required property",
    ),
    "unknown key": (
        lambda c: c.update(storage="s3://b"),
        "storage: Ray's cluster schema: Additional properties are not allowed",
    ),
    "unpinned Ray": (
        _set_setup("pip install ray[default] ~/taso-tune"),
        'setup_commands[0]: installs Ray unpinned; pin pip install "ray[default,tune]==',
    ),
    "another Ray version": (
        _set_setup('pip install "ray[default,tune]==2.59.0" ~/taso-tune'),
        "setup_commands[0]: installs Ray ==2.59.0",
    ),
    "Ray never installed": (
        _set_setup("pip install ~/taso-tune"),
        'setup_commands: must pip install "ray[default,tune]==',
    ),
    "Ray's default setup commands": (
        lambda c: c.pop("setup_commands"),
        "installs Ray from a URL",
    ),
    "exposed dashboard": (
        lambda c: _set_head_start(c, "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"),
        "head_start_ray_commands[1]: --dashboard-host=0.0.0.0 exposes the dashboard",
    ),
    "Ray's default start commands expose the dashboard": (
        lambda c: c.pop("head_start_ray_commands"),
        "--dashboard-host=0.0.0.0 exposes the dashboard and Jobs API; keep the default (127.0.0.1) and "
        "reach it with `ray dashboard CONFIG` (Ray's default: the file does not set head_start_ray_commands)",
    ),
    "dashboard port open to the world": (
        lambda c: c["provider"].update(
            security_group={
                "GroupName": "taso-tune",
                "IpPermissions": [
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 8265,
                        "ToPort": 8265,
                        "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                    }
                ],
            }
        ),
        "provider.security_group.IpPermissions[0]: opens Ray port 8265 to 0.0.0.0/0",
    ),
    "head type not a node type": (
        lambda c: c.update(head_node_type="head"),
        "head_node_type: must be one of available_node_types (head_cpu, gpu_1x, gpu_8x) (got 'head')",
    ),
    "token authentication disabled": (
        lambda c: _set_head_start(c, "RAY_AUTH_MODE=token", "RAY_AUTH_MODE=disabled"),
        "head_start_ray_commands[1]: sets RAY_AUTH_MODE=disabled; token authentication must stay on",
    ),
    "token not copied to the nodes": (
        lambda c: c["file_mounts"].pop("~/.ray/auth_token"),
        'file_mounts: must copy the Ray token to every node: "~/.ray/auth_token": "~/.ray/auth_token"',
    ),
    "no storage": (
        lambda c: _set_head_start(c, "TASO_TUNE_STORAGE=s3://your-taso-tune-bucket/sweeps", ""),
        "head_start_ray_commands: the `ray start --head` command must set TASO_TUNE_STORAGE=LOCATION",
    ),
    "node-local storage": (
        lambda c: _set_head_start(c, "s3://your-taso-tune-bucket/sweeps", "/home/ubuntu/runs"),
        "head_start_ray_commands[1]: a sweep over 11 nodes cannot use a node-local path",
    ),
}


@pytest.mark.parametrize("case", LAUNCHER_CASES)
def test_broken_launcher_config_is_reported(case: str, tmp_path: Path) -> None:
    change, message = LAUNCHER_CASES[case]
    path = broken(tmp_path, AWS, change)
    found = problems_of(path)
    assert f"{path}: " in found
    assert message in found


def test_rays_defaults_alone_fail(tmp_path: Path) -> None:
    path = tmp_path / "minimal.yaml"
    path.write_text("cluster_name: minimal\nprovider: {type: aws, region: us-west-2}\n")
    found = problems_of(str(path))
    for key in (
        "available_node_types.ray.worker.default.resources.GPU",
        "setup_commands[1]",
        "head_start_ray_commands[1]",
        "worker_start_ray_commands[1]",
        "file_mounts",
    ):
        assert f"{path}: {key}: " in found
    assert "--dashboard-host=0.0.0.0 exposes the dashboard" in found


def test_onprem_storage_must_be_shared(tmp_path: Path) -> None:
    onprem = ROOT / "cluster" / "onprem.yaml"
    path = broken(
        tmp_path, onprem, lambda c: _set_head_start(c, "/nfs/taso-tune/sweeps", "/home/taso/runs")
    )
    assert (
        "head_start_ray_commands[1]: a sweep over 4 nodes cannot use a node-local path"
        in problems_of(path)
    )


def test_a_schema_error_does_not_hide_the_other_problems(tmp_path: Path) -> None:
    def change(c: dict) -> None:
        c["storage"] = "s3://b"
        _set_head_start(c, "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")

    found = problems_of(broken(tmp_path, AWS, change))
    assert "storage: Ray's cluster schema: Additional properties are not allowed" in found
    assert "--dashboard-host=0.0.0.0 exposes the dashboard" in found


def test_one_line_per_problem(tmp_path: Path) -> None:
    path = broken(
        tmp_path, AWS, lambda c: c["available_node_types"]["gpu_1x"]["resources"].update(GPU=0.5)
    )
    line = f"{path}: available_node_types.gpu_1x.resources.GPU: must be an integer (got 0.5)"
    assert check_cluster_file(path) == [line]


def test_unreadable_and_foreign_files_are_reported(tmp_path: Path) -> None:
    other = tmp_path / "deployment.yaml"
    other.write_text("apiVersion: apps/v1\nkind: Deployment\n")
    found = [
        line for f in (str(tmp_path / "missing.yaml"), str(other)) for line in check_cluster_file(f)
    ]
    assert found[0].startswith(f"{tmp_path / 'missing.yaml'}: cannot read:")
    assert (
        found[1]
        == f"{other}: is neither a Ray cluster launcher config nor a KubeRay (ray.io/v1) manifest"
    )


# ---------------------------------------------------------------- KubeRay manifests


def _cluster(docs: list) -> dict:
    return docs[1]["spec"]


def _worker(docs: list) -> dict:
    return _cluster(docs)["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]


KUBERAY_CASES = {
    "image of another Ray version": (
        lambda d: _worker(d).update(image="rayproject/ray:2.59.0-py311-gpu"),
        "[1].spec.workerGroupSpecs[0].template.spec.containers[0].image: the tag must pin Ray "
        f"{VERSION} (e.g. {VERSION}-py311-gpu) (got 'rayproject/ray:2.59.0-py311-gpu')",
    ),
    "unpinned image": (
        lambda d: _worker(d).update(image="rayproject/ray:latest-gpu"),
        "containers[0].image: the tag must pin Ray",
    ),
    "rayVersion of another Ray": (
        lambda d: _cluster(d).update(rayVersion="2.59.0"),
        f"[1].spec.rayVersion: must be {VERSION}",
    ),
    "dashboard on a LoadBalancer": (
        lambda d: _cluster(d)["headGroupSpec"].update(serviceType="LoadBalancer"),
        "[1].spec.headGroupSpec.serviceType: exposes Ray outside Kubernetes; use a ClusterIP Service",
    ),
    "extra LoadBalancer Service": (
        lambda d: d.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "dash"},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 8265}]},
            }
        ),
        "[2].spec.type: exposes Ray outside Kubernetes",
    ),
    "dashboard on 0.0.0.0": (
        lambda d: _cluster(d)["headGroupSpec"]["rayStartParams"].update(
            {"dashboard-host": "0.0.0.0"}
        ),
        "[1].spec.headGroupSpec.rayStartParams.dashboard-host: must not be set beyond localhost",
    ),
    "fractional GPU limit": (
        lambda d: _worker(d)["resources"]["limits"].update({"nvidia.com/gpu": 0.5}),
        "[1].spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.nvidia.com/gpu: "
        "must be a whole number (got 0.5)",
    ),
    "token authentication off": (
        lambda d: _cluster(d).pop("authOptions"),
        "[1].spec.authOptions.mode: must be token",
    ),
    "auth disabled by env": (
        lambda d: (
            _worker(d).setdefault("env", []).append({"name": "RAY_AUTH_MODE", "value": "disabled"})
        ),
        "sets RAY_AUTH_MODE=disabled; token authentication must stay on",
    ),
    "replicas outside their bounds": (
        lambda d: _cluster(d)["workerGroupSpecs"][0].update(replicas=9),
        "[1].spec.workerGroupSpecs[0]: needs minReplicas <= replicas <= maxReplicas",
    ),
    "number in rayStartParams": (
        lambda d: _cluster(d)["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
        "rayStartParams.num-cpus: must be a string",
    ),
    "no storage on the head": (
        lambda d: _cluster(d)["headGroupSpec"]["template"]["spec"]["containers"][0].pop("env"),
        "[1].spec.headGroupSpec: the head container must set TASO_TUNE_STORAGE=LOCATION",
    ),
}


@pytest.mark.parametrize("case", KUBERAY_CASES)
def test_broken_raycluster_is_reported(case: str, tmp_path: Path) -> None:
    change, message = KUBERAY_CASES[case]
    path = broken(tmp_path, RAYCLUSTER, change)
    assert message in problems_of(path)


def _job_spec(docs: list) -> dict:
    return docs[1]["spec"]


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("python train.py", "must run `taso-tune sweep SPACE.yaml --name NAME --storage LOCATION`"),
        ("taso-tune sweep s.yaml --name x", "must pass --storage LOCATION"),
        (
            "taso-tune sweep s.yaml --name x --storage runs",
            "a sweep over 17 nodes cannot use a node-local path",
        ),
    ],
)
def test_rayjob_entrypoint_must_sweep_to_shared_storage(
    entrypoint: str, message: str, tmp_path: Path
) -> None:
    path = broken(tmp_path, RAYJOB, lambda d: _job_spec(d).update(entrypoint=entrypoint))
    assert f"{path}: [1].spec.entrypoint: " in problems_of(path)
    assert message in problems_of(path)


def test_rayjob_cluster_is_checked_like_a_raycluster(tmp_path: Path) -> None:
    def change(docs: list) -> None:
        group = _job_spec(docs)["rayClusterSpec"]["workerGroupSpecs"][0]
        group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "0.5"

    path = broken(tmp_path, RAYJOB, change)
    at = "[1].spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.nvidia.com/gpu"
    assert f"{at}: must be a whole number (got '0.5')" in problems_of(path)


# ---------------------------------------------------------------- require_shared_storage


def test_local_path_on_several_nodes_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        require_shared_storage("/home/me/runs", 3)
    assert err.value.field == "storage"
    assert err.value.value == "/home/me/runs"
    assert "3 nodes" in err.value.problem and "its own disk" in err.value.problem


def test_no_storage_on_several_nodes_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs --storage on shared storage"):
        require_shared_storage(None, 2)


@pytest.mark.parametrize(
    "storage", ["runs", "~/runs", "file:///home/me/runs", "/mnt/../home/me/runs"]
)
def test_node_local_forms_are_refused(storage: str) -> None:
    with pytest.raises(ConfigError, match="node-local path"):
        require_shared_storage(storage, 2)


def test_unknown_uri_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"valid choices: s3://, gs://"):
        require_shared_storage("ftp://host/runs", 2)


@pytest.mark.parametrize(
    "storage",
    [
        "s3://bucket/sweeps",
        "gs://bucket/sweeps",
        "abfs://c@a.dfs.core.windows.net/x",
        "hdfs://nn/x",
        "/mnt/shared/sweeps",
        "/nfs/taso-tune",
    ],
)
def test_shared_storage_is_accepted(storage: str) -> None:
    require_shared_storage(storage, 3)


@pytest.mark.parametrize("storage", [None, "runs", "/home/me/runs"])
def test_single_node_accepts_anything(storage: str | None) -> None:
    require_shared_storage(storage, 1)


def test_declared_shared_mount_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASO_TUNE_SHARED_STORAGE", "1")
    require_shared_storage("/shared/lab/runs", 4)


def test_checking_does_not_change_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    before = {p: Path(p).read_text() for p in CLUSTER_FILES}
    for path in CLUSTER_FILES:
        check_cluster_file(path)
    assert before == {p: Path(p).read_text() for p in CLUSTER_FILES}


def test_an_image_whose_nvidia_driver_cannot_run_the_pinned_torch_is_flagged(
    tmp_path: Path,
) -> None:
    cuda = torch_cuda()
    if cuda is None or int(cuda.split(".")[0]) not in MIN_DRIVER_FOR_CUDA:
        pytest.skip(f"the installed torch is no CUDA build the rule knows ({cuda})")
    need = MIN_DRIVER_FOR_CUDA[int(cuda.split(".")[0])]
    old = f"projects/deeplearning-platform-release/global/images/family/common-cu128-ubuntu-2204-nvidia-{need - 10}"

    def older_driver(config: Any) -> None:
        disk = config["available_node_types"]["gpu_1x"]["node_config"]["disks"][0]
        disk["initializeParams"]["sourceImage"] = old

    found = problems_of(broken(tmp_path, GCP, older_driver))
    assert found.count("\n") == 0, found
    assert "available_node_types.gpu_1x.node_config.disks[0].initializeParams.sourceImage" in found
    assert f"ships NVIDIA driver {need - 10}" in found
    assert f"needs driver >= {need}" in found
    # the shipped file's image carries a driver new enough
    assert problems_of(str(GCP)) == ""


def test_driver_minimum_follows_the_cuda_major_version() -> None:
    assert MIN_DRIVER_FOR_CUDA[13] == 580  # cu130 wheels
    assert MIN_DRIVER_FOR_CUDA[12] == 525
