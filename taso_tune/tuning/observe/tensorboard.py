"""TensorBoard files a person can read: the epoch metrics as scalars, the trial as hparams.

Ray Tune's own TensorBoard logger writes every reported number as a scalar under ``ray/tune/`` and,
when a trial ends, the trial's *config* as its hparams: for a taso-tune trial that is one opaque
``trial`` dict. :class:`HParamsLogger` keeps Ray's scalars (the epoch metrics, their std over seeds
and each seed's own under ``per_seed/``) without the labels, and writes as hparams what a person
compares in the HParams view: the optimizer, each resolved hyperparameter (recipe defaults
included), the seeds, the model and data; the metrics shown there are the trial's last epoch.
``tensorboard --logdir EXPERIMENT`` shows them.
"""

from __future__ import annotations

from typing import Any

from ray.tune.logger import TBXLoggerCallback

from taso_tune.core.records import LABEL_FIELDS, METRICS, TrialReport

#: The prefix Ray Tune's logger gives every scalar.
SCALAR_PREFIX = "ray/tune/"
#: Scalars the HParams view shows beside the hparams: each metric, its std over seeds, the epoch.
HPARAM_METRICS: tuple[str, ...] = (*METRICS, *(f"{m}_std" for m in METRICS), "epoch")


def trial_hparams(result: TrialReport) -> dict[str, str | float | int | bool]:
    """The hparams of a trial from one of its reports (its labels): optimizer, resolved hyperparameters, seeds,
    configuration id, model, data set and batch size (values TensorBoard can show: numbers, text,
    booleans; a tuple such as Adam's betas as text)."""
    seeds = [int(s) for s in result.get("seeds") or []]
    hparams: dict[str, Any] = {
        "optimizer": result.get("optimizer", ""),
        "config_id": result.get("config_id", ""),
        "seeds": ",".join(map(str, seeds)),
        "n_seeds": len(seeds),
        "model": result.get("model", ""),
        "dataset": result.get("dataset", ""),
        "batch_size": result.get("batch_size", 0),
    }
    for name, value in sorted((result.get("hp") or {}).items()):
        if isinstance(value, bool | int | float | str):
            hparams[name] = value
        elif isinstance(value, list | tuple):
            hparams[name] = ",".join(map(str, value))
    return hparams


def hparam_metrics(result: TrialReport) -> dict[str, float]:
    """The scalar tags (and last values) the HParams view shows for a trial: the report's own means
    over the seeds and their std."""
    return {
        f"{SCALAR_PREFIX}{m}": float(result[m])
        for m in HPARAM_METRICS
        if isinstance(result.get(m), int | float) and not isinstance(result.get(m), bool)
    }


class HParamsLogger(TBXLoggerCallback):
    """Ray Tune's TensorBoard logger with taso-tune's hparams (it replaces Tune's default one)."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[Any, TrialReport] = {}

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        self._last[trial] = result  # type: ignore[assignment]  (a TrialReport and Tune's keys)
        # the labels are text and lists: as scalars or histograms they would only be noise
        scalars = {k: v for k, v in result.items() if k not in LABEL_FIELDS}
        super().log_trial_result(iteration, trial, scalars)

    def _try_log_hparams(self, trial, result: dict) -> None:
        # called by Tune's logger when the trial ends, with the trial's last scalars
        from tensorboardX.summary import hparams

        last = self._last.pop(trial, None)
        if not last:
            return
        metrics = {tag: value for tag, value in hparam_metrics(last).items() if tag in result}
        writer = self._trial_writer[trial].file_writer
        for summary in hparams(hparam_dict=trial_hparams(last), metric_dict=metrics):
            writer.add_summary(summary)
