"""What a person watches a sweep with, without a cluster: the progress lines, the TensorBoard hparams
(read by TensorBoard's own HParams plugin), the Prometheus config, where the cluster token is read,
the `submit` checks made before anything is sent, and the training progress bar. Expected lines are
written out by hand."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from sweep_helpers import hparam_values, tensorboard_hparams, write_space
from tensorboard.plugins.hparams import api_pb2

from taso_tune.cli import main
from taso_tune.cli.epoch_bar import EpochBar
from taso_tune.cluster.jobs import Token, find_token
from taso_tune.cluster.prometheus import discovery_file, prometheus_command, prometheus_config
from taso_tune.core.errors import ConfigError
from taso_tune.spaces import load_space
from taso_tune.training.optimizers import resolve_hparams
from taso_tune.tuning.observe.progress import (
    SweepProgress,
    TrialView,
    best_trial_line,
    format_duration,
)
from taso_tune.tuning.observe.tensorboard import (
    HParamsLogger,
    event_file,
    session_summaries,
    trial_hparams,
    write_experiment_summary,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _report(epoch: int, val_acc: float, std: float | None = None, **more) -> dict:
    report = {"epoch": epoch, "planned_epochs": 4, "val_acc": val_acc, "seeds": [0, 1], **more}
    if std is not None:
        report["val_acc_std"] = std
    return report


def test_progress_lines_for_ended_trials_and_the_plan() -> None:
    clock = Clock()
    progress = SweepProgress(planned_trials=3, epochs_per_trial=4, metric="val_acc", clock=clock)
    assert progress.update([TrialView("a", "PENDING", {}), TrialView("b", "PENDING", {})]) == []
    clock.now += 10
    # a finished its 4 epochs; b was stopped by ASHA after 1; c is not created yet
    lines = progress.update(
        [
            TrialView("a", "TERMINATED", _report(4, 0.9, 0.0125)),
            TrialView("b", "TERMINATED", _report(1, 0.5)),
        ]
    )
    assert lines == [
        "trial a complete, 4/4 epochs: val_acc 0.9000 ± 0.0125 over 2 seeds",
        "trial b stopped early by the scheduler at epoch 1/4: val_acc 0.5000 over 2 seeds",
        # planned: 4 + 1 epochs of the ended trials + 4 of the one to come; 5 epochs in 10 s -> 8 s left
        "progress: 2/3 trials done, 5/9 trial-epochs, 10s elapsed, about 8s left",
    ]
    clock.now += 5  # nothing new and under STATUS_EVERY_S since the last line
    assert (
        progress.update(
            [TrialView("a", "TERMINATED", _report(4, 0.9)), TrialView("c", "RUNNING", {})]
        )
        == []
    )
    clock.now += 30
    lines = progress.update(
        [
            TrialView("a", "TERMINATED", _report(4, 0.9)),
            TrialView("b", "TERMINATED", _report(1, 0.5)),
            TrialView("c", "ERROR", _report(2, 0.7, diverged=False)),
        ]
    )
    assert lines == [
        "trial c errored at epoch 2/4: val_acc 0.7000 over 2 seeds",
        "progress: 3/3 trials done, 7/7 trial-epochs, 45s elapsed, done",
    ]


def test_progress_after_a_resume_counts_only_new_epochs() -> None:
    clock = Clock()
    progress = SweepProgress(planned_trials=2, epochs_per_trial=10, metric="val_acc", clock=clock)
    # resumed: a ended before (no line for it), b restored at epoch 5
    assert (
        progress.update(
            [
                TrialView("a", "TERMINATED", _report(10, 0.8)),
                TrialView("b", "RUNNING", _report(5, 0.6)),
            ]
        )
        == []
    )
    clock.now += 40
    lines = progress.update(
        [TrialView("a", "TERMINATED", _report(10, 0.8)), TrialView("b", "RUNNING", _report(7, 0.7))]
    )
    # 2 new epochs in 40 s, 3 epochs left -> 60 s
    assert lines == ["progress: 1/2 trials done, 17/20 trial-epochs, 40s elapsed, about 1m00s left"]


def test_progress_line_for_a_diverged_trial_and_durations() -> None:
    progress = SweepProgress(planned_trials=1, epochs_per_trial=4, metric="val_loss", clock=Clock())
    line = progress.trial_line(
        TrialView(
            "t",
            "TERMINATED",
            {
                "epoch": 2,
                "planned_epochs": 4,
                "diverged": True,
                "val_loss": float("nan"),
                "seeds": [3],
            },
        )
    )
    assert line == "trial t diverged at epoch 2/4"
    assert [format_duration(s) for s in (0.4, 42, 185, 3720)] == ["0s", "42s", "3m05s", "1h02m"]


TASO_REPORT = {
    "config_id": "taso_lr=0.05",
    "optimizer": "taso",
    "seeds": [0, 1],
    "model": "lenet5",
    "dataset": "digits",
    "batch_size": 64,
    "hp": {
        "lr": 0.05,
        "alpha": 25.0,
        "beta": 0.7,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0001,
        "lr_final": None,
    },
    "epoch": 2,
    "val_acc": 0.5,
    "val_acc_std": 0.125,
    "test_acc": 0.4,
    "train_loss": 2.0,
    "diverged": False,
}


def test_hparams_are_the_trial_its_optimizer_its_resolved_fields_and_the_seeds() -> None:
    assert trial_hparams(TASO_REPORT, "taso_lr=0.05") == {
        "trial": "taso_lr=0.05",
        "optimizer": "taso",
        "seeds": "0,1",
        "n_seeds": 2.0,
        "model": "lenet5",
        "dataset": "digits",
        "batch_size": 64.0,
        "alpha": 25.0,
        "beta": 0.7,
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0001,
    }  # lr_final None: nothing to show
    adam = trial_hparams(
        {"optimizer": "amsgrad", "seeds": [4], "hp": {"betas": [0.9, 0.99], "amsgrad": True}}, "a"
    )
    assert adam["betas"] == "0.9,0.99" and adam["amsgrad"] is True and adam["seeds"] == "4"


def _hparam_info(info) -> tuple:
    """``(type, domain, differs)`` of a TensorBoard ``HParamInfo``."""
    if info.HasField("domain_interval"):
        domain = (info.domain_interval.min_value, info.domain_interval.max_value)
    else:
        domain = [getattr(v, v.WhichOneof("kind")) for v in info.domain_discrete.values]
    return api_pb2.DataType.Name(info.type), domain, info.differs


def test_tensorboard_reads_one_experiment_with_every_optimizers_hyperparameters(
    tmp_path: Path,
) -> None:
    """The driver's experiment summary and a session per trial (as the logger writes them), read by
    TensorBoard's own HParams plugin: every optimizer's fields with their planned values, the trial's
    name, optimizer, lr and the varied fields ticked, each trial a row named after it."""
    spec = load_space(
        str(
            write_space(
                tmp_path / "space.yaml",
                [
                    {"optimizer": "taso", "lr": {"grid": [0.05, 0.1]}},
                    {"optimizer": "amsgrad"},
                    {"optimizer": "rmsprop", "centered": {"grid": [True, False]}},
                    {"optimizer": "adagrad", "lr": 0.02},
                ],
                train={"batch_size": 64},
                seeds=2,
            )
        )
    )
    experiment = tmp_path / "runs" / "tiny"
    write_experiment_summary(str(experiment), spec)
    for flat in spec.configurations():
        trial = experiment / f"{flat['config_id']}_0000"
        trial.mkdir()
        report = {
            **{k: flat[k] for k in ("optimizer", "model", "dataset", "batch_size")},
            "seeds": [0, 1],
            "hp": resolve_hparams(flat["optimizer"], {k: flat[k] for k in flat if k == "lr"}),
        }
        start, end = session_summaries(
            trial_hparams(report, flat["config_id"]), flat["config_id"], failed=False
        )
        (trial / "events.out.tfevents.1.host").write_bytes(event_file([start, end]))

    shown, groups = tensorboard_hparams(experiment)
    infos = {info.name: _hparam_info(info) for info in shown.hparam_infos}
    assert infos == {
        "trial": ("DATA_TYPE_STRING", [], True),
        "optimizer": ("DATA_TYPE_STRING", ["adagrad", "amsgrad", "rmsprop", "taso"], True),
        "lr": ("DATA_TYPE_FLOAT64", [0.0005, 0.02, 0.05, 0.1], True),
        "centered": ("DATA_TYPE_BOOL", [False, True], True),  # varied by the space
        "alpha": ("DATA_TYPE_FLOAT64", [25.0], False),
        "beta": ("DATA_TYPE_FLOAT64", [0.7], False),
        "momentum": ("DATA_TYPE_FLOAT64", [0.0, 0.9], False),
        "nesterov": ("DATA_TYPE_BOOL", [False], False),
        "beta1": ("DATA_TYPE_FLOAT64", [0.9], False),
        "beta2": ("DATA_TYPE_FLOAT64", [0.99], False),
        "rho": ("DATA_TYPE_FLOAT64", [0.99], False),
        "lr_decay": ("DATA_TYPE_FLOAT64", [0.0], False),
        "eps": ("DATA_TYPE_FLOAT64", [1e-10, 1e-08], False),
        "weight_decay": ("DATA_TYPE_FLOAT64", [0.0, 0.0001], False),
        "seeds": ("DATA_TYPE_STRING", ["0,1"], False),
        "n_seeds": ("DATA_TYPE_FLOAT64", [2.0], False),
        "model": ("DATA_TYPE_STRING", ["lenet5"], False),
        "dataset": ("DATA_TYPE_STRING", ["digits"], False),
        "batch_size": ("DATA_TYPE_FLOAT64", [64.0], False),
    }  # taso's lr_final (None unless set) has no value to show
    assert shown.metric_infos[0].name.tag == "ray/tune/val_acc"  # the sweep's metric first
    assert {m.name.tag for m in shown.metric_infos} >= {"ray/tune/test_acc", "ray/tune/epoch"}
    rows = {group.name: hparam_values(group) for group in groups}
    assert set(rows) == {c["config_id"] for c in spec.configurations()}
    adagrad = rows["adagrad"]
    assert adagrad["trial"] == "adagrad" and adagrad["lr"] == 0.02
    assert {"lr_decay", "eps"} <= set(adagrad) and "rho" not in adagrad
    assert {"beta1", "beta2"} <= set(rows["amsgrad"]) and {"rho", "centered"} <= set(
        rows["rmsprop_centered=true"]
    )


def test_the_experiment_of_an_optuna_space_holds_its_intervals(tmp_path: Path) -> None:
    spec = load_space(
        str(
            write_space(
                tmp_path / "space.yaml",
                [
                    {"optimizer": "taso", "lr": {"loguniform": [0.01, 0.2]}},
                    {"optimizer": {"choice": ["adagrad", "rmsprop"]}, "lr": 0.3},
                ],
                search={"type": "optuna", "num_samples": 4},
                seeds={"count": 2},
                seeds_per_trial=1,
            )
        )
    )
    write_experiment_summary(str(tmp_path), spec)
    shown, _ = tensorboard_hparams(tmp_path)
    infos = {info.name: _hparam_info(info) for info in shown.hparam_infos}
    # the interval covers the distribution and the other blocks' values
    assert infos["lr"] == ("DATA_TYPE_FLOAT64", (0.01, 0.3), True)
    assert infos["optimizer"] == ("DATA_TYPE_STRING", ["adagrad", "rmsprop", "taso"], True)
    assert infos["seeds"] == ("DATA_TYPE_STRING", ["0", "1"], False)
    assert infos["rho"][1] == [0.99] and infos["lr_decay"][1] == [0.0]
    assert [n for n, (_, _, differs) in infos.items() if differs] == ["lr", "optimizer", "trial"]


class _Trial:
    """What Ray Tune's TensorBoard logger asks of a trial: its folder, params and name."""

    def __init__(self, folder: Path, name: str) -> None:
        self.local_path, self.name, self.evaluated_params = str(folder), name, {"trial": {}}

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)

    def __str__(self) -> str:
        return self.name


def test_a_logger_restored_from_an_older_sweep_writes_the_session_of_a_failed_trial(
    tmp_path: Path,
) -> None:
    # a resumed sweep unpickles the logger saved with its Tuner: one without group_prefix here
    saved = HParamsLogger("rung-0-1ep/").__dict__
    logger = HParamsLogger.__new__(HParamsLogger)
    logger.__dict__.update({k: v for k, v in saved.items() if k != "group_prefix"})
    trial = _Trial(tmp_path / "adagrad_0000", "adagrad")
    report = {**TASO_REPORT, "optimizer": "adagrad", "hp": {"lr": 0.05, "eps": 1e-10}}
    logger.log_trial_result(1, trial, {**report, "training_iteration": 1})
    logger.log_trial_end(trial, failed=True)
    _, groups = tensorboard_hparams(tmp_path)
    assert [g.name for g in groups] == ["adagrad"]
    assert hparam_values(groups[0])["eps"] == 1e-10
    assert groups[0].sessions[0].status == api_pb2.Status.STATUS_FAILURE
    metrics = {m.name.tag: m.value for m in groups[0].metric_values}
    assert metrics["ray/tune/val_acc"] == 0.5


def test_the_best_trial_line_names_the_trial() -> None:
    best = TrialView("adagrad_lr=0.05", "RUNNING", _report(3, 0.9312, 0.004))
    assert best_trial_line(best, "val_acc") == (
        "Current best trial: adagrad_lr=0.05, val_acc 0.9312 ± 0.0040 over 2 seeds at epoch 3/4"
    )


def test_prometheus_config_uses_rays_discovery_file_on_localhost() -> None:
    assert discovery_file("/tmp/ray-x") == "/tmp/ray-x/prom_metrics_service_discovery.json"
    config = yaml.safe_load(
        prometheus_config("/tmp/ray-x/prom_metrics_service_discovery.json", "2s")
    )
    assert config == {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "scrape_configs": [
            {
                "job_name": "ray",
                "file_sd_configs": [
                    {
                        "files": ["/tmp/ray-x/prom_metrics_service_discovery.json"],
                        "refresh_interval": "5s",
                    }
                ],
            }
        ],
    }
    command = prometheus_command("/c/prometheus.yml", "/c/data", 9091)
    assert (
        "--web.listen-address=127.0.0.1:9091" in command
        and "--config.file=/c/prometheus.yml" in command
    )


@pytest.fixture
def no_token_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_the_token_comes_from_the_flag_the_environment_or_the_token_file(
    no_token_env: Path, monkeypatch
) -> None:
    assert find_token() is None
    (no_token_env / ".ray").mkdir()
    (no_token_env / ".ray" / "auth_token").write_text("from-home\n")
    assert find_token() == Token("from-home", str(no_token_env / ".ray" / "auth_token"))
    own = no_token_env / "own"
    own.write_text("from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(own))
    assert find_token() == Token("from-path", f"RAY_AUTH_TOKEN_PATH ({own})")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert find_token() == Token("from-env", "RAY_AUTH_TOKEN")
    flag = no_token_env / "flag"
    flag.write_text(" from-flag ")
    assert find_token(str(flag)) == Token("from-flag", str(flag))
    assert "from-flag" not in repr(find_token(str(flag)))  # never shown
    (no_token_env / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="--token-file.*empty"):
        find_token(str(no_token_env / "empty"))
    with pytest.raises(ConfigError, match="--token-file.*cannot read"):
        find_token(str(no_token_env / "missing"))


def test_submit_checks_the_space_and_the_working_dir_before_contacting_a_cluster(
    tmp_path: Path, capsys
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    space = write_space(tmp_path / "outside.yaml", [{"optimizer": "taso"}])
    # nothing listens on port 9: a request would fail with another message
    address = ["--address", "http://127.0.0.1:9"]
    assert main(["submit", str(space), "--working-dir", str(work), *address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be inside the working directory" in err
    bad = write_space(work / "bad.yaml", [{"optimizer": "taso", "beta": 1.5}])
    assert main(["submit", str(bad), "--working-dir", str(work), *address]) == 2
    assert "beta" in capsys.readouterr().err
    assert main(["submit", "--working-dir", str(work), *address]) == 2
    assert "--resume" in capsys.readouterr().err
    good = write_space(work / "good.yaml", [{"optimizer": "taso"}])
    assert main(["submit", str(good), "--working-dir", str(work), *address]) == 2
    assert "no Ray dashboard answers there" in capsys.readouterr().err


def test_epoch_bar_appears_after_the_delay_and_clears_itself() -> None:
    clock = Clock()
    stream = io.StringIO()
    bar = EpochBar(stream, total_epochs=3, delay=2.0, clock=clock)
    seen = []
    for batch in bar.batches(range(4), epoch=2):
        seen.append(batch)
        clock.now += 1.0  # each batch takes a second: the bar appears after the second one
    assert seen == [0, 1, 2, 3]
    drawn = stream.getvalue().split("\r")[1:]
    assert drawn[0] == "epoch 2/3 [############............] 2/4 batches  2s, ~2s left"
    assert drawn[1] == "epoch 2/3 [##################......] 3/4 batches  3s, ~1s left"
    assert drawn[2] == "epoch 2/3 [########################] 4/4 batches  4s, ~0s left"
    assert drawn[3:] == [" " * len(drawn[2]), ""]  # cleared before the epoch's line


def test_train_prints_plain_lines_when_not_on_a_terminal(tmp_path: Path, capsys) -> None:
    argv = [
        "train",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--train-limit",
        "200",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "\r" not in out and "epoch   1/1" in out
