"""The one statistics rule for results over seeds: summarise, bound, rank, format.

A configuration (one optimizer and its hyperparameters) is trained with ``planned`` seeds. Each seed
ends *complete* (a final metric value), *diverged* (training blew up) or *missing* (still running,
errored, or stopped early by a scheduler). Every table, report, export and successive-halving rung
asks this module the same questions, so they all give the same, honestly uncertain, answer:

* :func:`diverged_score` is the one rule for what a diverged seed scores (every caller asks it), and
  :func:`summarize` scores a diverged seed at that chance level and counts it, and
  gives the mean, the sample std (``ddof=1``) and a Student-t confidence interval of the mean, cut to
  the range the metric can take (:func:`bounded`). With fewer than two seeds std and interval are
  ``None`` (shown as "—", exported as null), never 0. It also counts the seeds *at chance*
  (:func:`at_chance_threshold`), which break the t interval's assumption of roughly normal seeds.
* :func:`rank` orders only the configurations whose planned seeds all finished, by mean; the others
  are listed as "not compared: k of n seeds" and are never the pick. Ranking gives no verdict: two
  configurations are told apart only by :mod:`taso_tune.stats.verdict`.
* :mod:`taso_tune.stats.paired` compares two configurations run over the same seeds.
* :func:`format_mean_std`, :func:`format_interval` and :func:`status_text` are the one way every
  output writes these numbers.

Pure: the standard library, numpy and scipy only (plus the project's error type), no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from scipy import special

from taso_tune.core.errors import ConfigError

Mode = Literal["max", "min"]
MetricKind = Literal["accuracy", "loss"]

MODES: tuple[Mode, ...] = ("max", "min")
METRIC_KINDS: tuple[MetricKind, ...] = ("accuracy", "loss")
DEFAULT_CONFIDENCE = 0.95
#: A seed is at chance when it learned under this share of the way from chance to perfect accuracy.
AT_CHANCE_SHARE = 0.1
#: Shown where a number does not exist (std or interval with n < 2, mean with n = 0).
MISSING_TEXT = "—"

__all__ = [
    "ACCURACY_DIFFERENCE_RANGE",
    "ACCURACY_RANGE",
    "AT_CHANCE_SHARE",
    "AT_CHANCE_UNKNOWN",
    "DEFAULT_CONFIDENCE",
    "LOSS_RANGE",
    "METRIC_KINDS",
    "MISSING_TEXT",
    "MODES",
    "TIE_TOLERANCE",
    "Interval",
    "MetricKind",
    "Mode",
    "RankedRow",
    "SeedSummary",
    "at_chance_threshold",
    "bounded",
    "chance_level",
    "diverged_score",
    "format_interval",
    "format_mean_std",
    "pick",
    "rank",
    "tied",
    "status_text",
    "summarize",
    "t_interval",
]


class Interval(NamedTuple):
    """A closed interval ``[low, high]``."""

    low: float
    high: float


#: What an accuracy can be, what a difference of two accuracies can be, and what a loss can be.
ACCURACY_RANGE = Interval(0.0, 1.0)
ACCURACY_DIFFERENCE_RANGE = Interval(-1.0, 1.0)
LOSS_RANGE = Interval(0.0, math.inf)


@dataclass(frozen=True)
class SeedSummary:
    """One configuration's result over its seeds.

    ``n = complete + diverged + no_value`` seeds enter the statistics (diverged ones, and the
    ``no_value`` ones that finished without a finite value, at chance level); ``missing = planned -
    n`` do not; ``complete`` counts the seeds with a finite value. ``mean`` is ``None`` when ``n == 0``; ``std``, ``ci_low`` and
    ``ci_high`` are ``None`` when ``n < 2``; the interval lies inside the metric's range when
    :func:`summarize` was told it. ``at_chance`` counts the seeds of the ``n`` that learned nothing
    worth the name: the diverged and no-value ones, and for an accuracy those below
    :func:`at_chance_threshold`; ``None`` for an accuracy whose chance level is unknown (the data
    set's number of classes unknown), where no seed is counted. ``comparable`` is true only when every planned seed finished, which
    is what :func:`rank` requires. ``dataclasses.asdict`` of it is the export record (``None``
    becomes JSON null).
    """

    planned: int
    complete: int
    diverged: int
    missing: int
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    comparable: bool
    at_chance: int | None = 0
    no_value: int = 0

    @property
    def interval(self) -> Interval | None:
        """The confidence interval of the mean, or ``None`` when ``n < 2``."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return Interval(self.ci_low, self.ci_high)


@dataclass(frozen=True)
class RankedRow:
    """One row of :func:`rank`: ``rank`` is 1-based, ``None`` for a configuration not compared (not
    all planned seeds finished). A rank is an order by mean, never a verdict: whether two
    configurations differ is :mod:`taso_tune.stats.verdict`'s question."""

    config_id: str
    rank: int | None
    summary: SeedSummary
    #: the other ranked configurations with the same mean (:func:`tied`): their order among
    #: themselves is not a finding
    tied_with: tuple[str, ...] = ()

    @property
    def compared(self) -> bool:
        """Whether the row was ranked (every planned seed finished)."""
        return self.rank is not None

    @property
    def status(self) -> str:
        """The row's status text (see :func:`status_text`)."""
        return status_text(self.summary)


# --- checks -------------------------------------------------------------------------------------


def is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ConfigError("mode", mode, "unknown ranking mode", choices=MODES)
    return mode  # type: ignore[return-value]


def check_confidence(confidence: float, field: str = "confidence") -> float:
    if not is_number(confidence) or not (0.0 < confidence < 1.0):
        raise ConfigError(field, confidence, "must be a number strictly between 0 and 1")
    return float(confidence)


def check_count(value: int, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(field, value, f"must be an integer >= {minimum}")
    return int(value)


def finite_array(values: Sequence[float], field: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ConfigError(field, values, "must be a flat sequence of numbers, one per seed")
    if not np.all(np.isfinite(array)):
        # a NaN or inf metric is a blown-up run: the caller must count it as diverged, or it would
        # poison every mean it enters
        raise ConfigError(
            field, values, "contains a NaN or infinite value; count such a seed as diverged"
        )
    return array


# --- one configuration --------------------------------------------------------------------------


def chance_level(
    kind: MetricKind, *, num_classes: int | None = None, worst_value: float | None = None
) -> float:
    """The score a diverged seed gets: what a model that learned nothing would reach.

    For an ``"accuracy"`` metric ``1 / num_classes`` of the data set; for a ``"loss"`` metric the
    worst (largest) value the sweep saw, which only the caller knows (``worst_value``).
    """
    if kind == "accuracy":
        if num_classes is None:
            raise ConfigError(
                "num_classes", None, "an accuracy metric needs the data set's number of classes"
            )
        return 1.0 / check_count(num_classes, "num_classes", 2)
    if kind == "loss":
        if not is_number(worst_value) or not math.isfinite(worst_value):
            raise ConfigError(
                "worst_value",
                worst_value,
                "a loss metric needs the worst finite loss the sweep saw",
            )
        return float(worst_value)
    raise ConfigError("kind", kind, "unknown metric kind", choices=METRIC_KINDS)


def diverged_score(
    metric: str, *, num_classes: int | None, complete: Iterable[float] = ()
) -> float:
    """What a diverged seed scores on ``metric``: the one rule of taso-tune (``docs/results.md``, "A
    diverged seed counts"), which every table, rung, trial report and test asks.

    An accuracy (a metric named ``*_acc``) scores ``1 / num_classes``, or 0 when the number of
    classes is unknown (``None``: no score is lower). A loss scores the worst (largest) finite value
    in ``complete``, the values the complete seeds the caller can see reached (the sweep's for the
    results, the rung's for successive halving, the trial's own for its epoch report); when no
    complete seed has a finite value, ln(``num_classes``), the loss of a uniform guess.
    """
    if metric.endswith("_acc"):
        if num_classes is None:
            return 0.0
        return chance_level("accuracy", num_classes=num_classes)
    reached = [float(v) for v in complete if is_number(v) and math.isfinite(v)]
    if reached:
        return chance_level("loss", worst_value=max(reached))
    if num_classes is None:
        raise ConfigError(
            "num_classes",
            None,
            f"no complete seed has a finite {metric!r}: a diverged seed's loss then needs the "
            "data set's number of classes",
        )
    return chance_level("loss", worst_value=math.log(check_count(num_classes, "num_classes", 2)))


def at_chance_threshold(chance: float) -> float:
    """The accuracy under which a seed counts as *at chance*: ``chance + 0.1 · (1 - chance)``, a
    tenth of the way from a uniform guess (``chance``, 1 / classes) to perfect accuracy; 0.19 on a
    10-class data set. A diverged seed is at chance whatever it reached."""
    return float(chance) + AT_CHANCE_SHARE * (1.0 - float(chance))


def bounded(interval: Interval, bounds: Interval | None) -> Interval:
    """``interval`` intersected with ``bounds``, the values the quantity can take (``None``: any).

    The one way an interval is kept inside a metric's range (:data:`ACCURACY_RANGE`,
    :data:`ACCURACY_DIFFERENCE_RANGE`, :data:`LOSS_RANGE`). It keeps the interval's coverage: when
    the true value lies in the interval, it lies in the range too, hence in both. An interval that
    misses the range altogether (impossible for an interval around a mean of values in the range)
    shrinks to the range's nearest end.
    """
    if bounds is None:
        return interval
    low = min(max(interval.low, bounds.low), bounds.high)
    high = max(min(interval.high, bounds.high), low)
    return Interval(low, high)


def t_interval(mean: float, std: float, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """``mean ± t_{(1+confidence)/2, n-1} · std / √n``: the interval of a mean of ``n >= 2`` values."""
    n = check_count(n, "n", 2)
    confidence = check_confidence(confidence)
    # the t quantile from scipy.special (Student's t inverse CDF) rather than scipy.stats.t.ppf: the
    # same number, and a trial's worker process imports scipy.stats in 0.4 s for nothing else
    half = float(special.stdtrit(n - 1, (1.0 + confidence) / 2.0)) * std / math.sqrt(n)
    return Interval(mean - half, mean + half)


def summarize(
    values: Sequence[float],
    planned: int,
    *,
    diverged: int = 0,
    no_value: int = 0,
    chance: float | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    kind: MetricKind | None = None,
    chance_known: bool = True,
) -> SeedSummary:
    """Summarise one configuration over its seeds.

    ``values`` are the final metric values of the complete seeds; ``diverged`` seeds are scored as
    ``chance`` (see :func:`chance_level`; required when ``diverged > 0``) and counted in ``n``, so a
    configuration that blows up on some seeds pays for it instead of looking better on the survivors.
    ``no_value`` seeds finished without a finite value (a blow-up the divergence rule did not flag):
    they are scored and counted like diverged ones, and named apart. The remaining ``planned -
    len(values) - diverged - no_value`` seeds are missing: they do not enter the numbers and make
    the summary not comparable.

    ``kind`` says what the metric is. An ``"accuracy"`` (which needs ``chance``, 1 / classes) gets
    its interval cut to [0, 1] and counts the complete seeds below :func:`at_chance_threshold` as at
    chance; a ``"loss"`` gets its interval cut at 0 below. Without ``kind`` the interval is the
    plain t interval and only diverged and no-value seeds count as at chance. ``chance_known=False``
    says the chance level is not the data set's (its number of classes unknown; ``chance`` is then
    only the score of a seed without a value): an accuracy then counts no seed at chance
    (``at_chance`` is ``None``), since a bar computed from a made-up chance level would mislead.
    """
    planned = check_count(planned, "planned", 1)
    diverged = check_count(diverged, "diverged", 0)
    no_value = check_count(no_value, "no_value", 0)
    confidence = check_confidence(confidence)
    if kind is not None and kind not in METRIC_KINDS:
        raise ConfigError("kind", kind, "unknown metric kind", choices=METRIC_KINDS)
    if kind == "accuracy" and chance_known and (not is_number(chance) or not math.isfinite(chance)):
        raise ConfigError("chance", chance, "an accuracy needs its chance level (1 / classes)")
    complete_values = finite_array(values, "values")
    complete = len(complete_values)
    without = diverged + no_value
    missing = planned - complete - without
    if missing < 0:
        raise ConfigError(
            "planned",
            planned,
            f"fewer than the {complete} complete + {diverged} diverged + {no_value} no-value "
            "seeds given",
        )
    if without:
        if not is_number(chance) or not math.isfinite(chance):
            raise ConfigError("chance", chance, "diverged seeds need a finite chance-level score")
        scores = np.concatenate([complete_values, np.full(without, float(chance))])
    else:
        scores = complete_values
    n = len(scores)
    mean = float(scores.mean()) if n else None
    std = ci_low = ci_high = None
    if n >= 2:
        std = float(scores.std(ddof=1))
        bounds = {"accuracy": ACCURACY_RANGE, "loss": LOSS_RANGE}.get(kind)
        ci_low, ci_high = bounded(t_interval(mean, std, n, confidence), bounds)
    at_chance: int | None = without
    if kind == "accuracy":
        if chance_known:
            at_chance += int((complete_values < at_chance_threshold(chance)).sum())
        else:
            at_chance = None
    return SeedSummary(
        planned=planned,
        complete=complete,
        diverged=diverged,
        missing=missing,
        n=n,
        mean=mean,
        std=std,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        comparable=missing == 0,
        at_chance=at_chance,
        no_value=no_value,
    )


# --- ranking ------------------------------------------------------------------------------------


def rank(summaries: Mapping[str, SeedSummary], mode: Mode) -> list[RankedRow]:
    """Rank configurations by mean, ``mode="max"`` (accuracy) or ``"min"`` (loss).

    Only comparable summaries (every planned seed finished) are ranked, 1, 2, ... by mean, equal
    means in config-id order; rank 1 is the pick. A rank is an order, not a verdict: overlapping or
    separate intervals are never read as one (:mod:`taso_tune.stats.verdict` compares picks, paired
    by seed). Each ranked row names the configurations it is tied with (``tied_with``).
    Configurations not comparable follow in config-id order with ``rank=None``; none is ever
    dropped.
    """
    mode = check_mode(mode)
    ranked = sorted(
        ((config_id, s) for config_id, s in summaries.items() if s.comparable),
        # comparable summaries have n = planned >= 1, so a mean
        key=lambda item: (-item[1].mean if mode == "max" else item[1].mean, item[0]),
    )
    confidences = {s.confidence for _, s in ranked}
    if len(confidences) > 1:
        raise ConfigError(
            "confidence",
            sorted(confidences),
            "summaries ranked together must share one confidence level",
        )
    groups: list[list[str]] = []  # runs of tied means, in rank order
    for index, (config_id, summary) in enumerate(ranked):
        if index and tied(ranked[index - 1][1].mean, summary.mean):
            groups[-1].append(config_id)
        else:
            groups.append([config_id])
    group_of = {config_id: group for group in groups for config_id in group}
    rows = [
        RankedRow(
            config_id,
            position,
            summary,
            tuple(other for other in group_of[config_id] if other != config_id),
        )
        for position, (config_id, summary) in enumerate(ranked, start=1)
    ]
    for config_id in sorted(c for c, s in summaries.items() if not s.comparable):
        rows.append(RankedRow(config_id, None, summaries[config_id]))
    return rows


#: Relative gap under which two means are one number: the same seed values summed in another order
TIE_TOLERANCE = 1e-12


def tied(a: float, b: float) -> bool:
    """Whether two means are equal, up to the rounding of summing the same values in another order.
    Small validation sets make ties common (143 images and 3 seeds give means in steps of 1/429):
    :func:`rank` still orders tied means (by the last bit, then by config id), an order that is not
    a finding."""
    return math.isclose(a, b, rel_tol=TIE_TOLERANCE, abs_tol=TIE_TOLERANCE)


def pick(rows: Sequence[RankedRow]) -> RankedRow | None:
    """The best row of :func:`rank` (rank 1), or ``None`` when no configuration could be compared."""
    return next((row for row in rows if row.rank == 1), None)


# --- formatting ---------------------------------------------------------------------------------


def _number(value: float | None, scale: float, digits: int, signed: bool = False) -> str:
    """A value as text; none (``None``, or NaN as a table's empty cell holds it) is ``"—"``."""
    if value is None or math.isnan(value):
        return MISSING_TEXT
    return f"{value * scale:+.{digits}f}" if signed else f"{value * scale:.{digits}f}"


def format_mean_std(
    mean: float | None, std: float | None, n: int, scale: float = 100.0, digits: int = 2
) -> str:
    """``"97.62 ± 0.80 (n=5)"``; ``"98.60 ± — (n=1)"`` without a std. ``scale=100`` prints a
    fraction as percent; pass ``scale=1`` for a loss."""
    return f"{_number(mean, scale, digits)} ± {_number(std, scale, digits)} (n={n})"


def format_interval(
    low: float | None,
    high: float | None,
    scale: float = 100.0,
    digits: int = 2,
    signed: bool = False,
) -> str:
    """``"[96.63, 98.61]"``, or ``"—"`` when there is no interval (n < 2); ``signed`` for a
    difference: ``"[-0.20, +1.48]"``."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return MISSING_TEXT
    return f"[{_number(low, scale, digits, signed)}, {_number(high, scale, digits, signed)}]"


#: What a row says when its seeds at chance were not counted.
AT_CHANCE_UNKNOWN = "at chance not counted (number of classes unknown)"


def status_text(summary: SeedSummary) -> str:
    """What a row says beside its numbers: ``"not compared: 3 of 5 seeds"`` when seeds are
    missing, ``"diverged 1/5"`` when some diverged (the seeds whose status says so, the export's
    ``diverged``), ``"no finite value 1/5"`` when some finished without one, and ``"at chance
    1/5"`` when some are at chance (diverged and no-value ones included; out of the n in the mean),
    or :data:`AT_CHANCE_UNKNOWN` when that could not be counted, joined by ``"; "``; empty for a
    row with every planned seed complete and above chance."""
    parts = []
    if not summary.comparable:
        parts.append(f"not compared: {summary.n} of {summary.planned} seeds")
    if summary.diverged:
        parts.append(f"diverged {summary.diverged}/{summary.n}")
    if summary.no_value:
        parts.append(f"no finite value {summary.no_value}/{summary.n}")
    if summary.at_chance is None:
        parts.append(AT_CHANCE_UNKNOWN)
    elif summary.at_chance:
        parts.append(f"at chance {summary.at_chance}/{summary.n}")
    return "; ".join(parts)
