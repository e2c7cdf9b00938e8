"""What a person watches a sweep with, without a cluster: the progress lines, the TensorBoard hparams,
the Prometheus config, where the cluster token is read, the `submit` checks made before anything is
sent, and the training progress bar. Expected lines are written out by hand."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from sweep_helpers import write_space

from taso_tune.cli import main
from taso_tune.cli.epoch_bar import EpochBar
from taso_tune.cluster.jobs import Token, find_token
from taso_tune.cluster.prometheus import discovery_file, prometheus_command, prometheus_config
from taso_tune.core.errors import ConfigError
from taso_tune.tuning.observe.progress import SweepProgress, TrialView, format_duration
from taso_tune.tuning.observe.tensorboard import hparam_metrics, trial_hparams


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


def test_hparams_are_the_optimizer_its_resolved_fields_and_the_seeds() -> None:
    assert trial_hparams(TASO_REPORT) == {
        "optimizer": "taso",
        "config_id": "taso_lr=0.05",
        "seeds": "0,1",
        "n_seeds": 2,
        "model": "lenet5",
        "dataset": "digits",
        "batch_size": 64,
        "alpha": 25.0,
        "beta": 0.7,
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0001,
    }
    adam = trial_hparams(
        {"optimizer": "amsgrad", "seeds": [4], "hp": {"betas": [0.9, 0.99], "amsgrad": True}}
    )
    assert adam["betas"] == "0.9,0.99" and adam["amsgrad"] is True and adam["seeds"] == "4"
    assert hparam_metrics(TASO_REPORT) == {
        "ray/tune/val_acc": 0.5,
        "ray/tune/test_acc": 0.4,
        "ray/tune/train_loss": 2.0,
        "ray/tune/val_acc_std": 0.125,
        "ray/tune/epoch": 2.0,
    }


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
