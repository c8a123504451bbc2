"""What a sweep is, as data: the zoo, the base training config, the search space and the budget.

Composed by Hydra from ``sweeps/sweep.yaml`` + ``sweeps/sweep/<name>.yaml`` in
the command line, checked here once (``SweepConfig.__post_init__``), then
passed down as a typed object. A searched knob is addressed by its dotted path
in ``wsl.config.TrainConfig`` (``loss.beta``, ``tokens.width``, ``optim.lr``)
and is a range (``low``/``high``, optionally ``log``, ``integer``), a list of
``choices``, or one fixed ``value``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from wsl import table
from wsl.config import TrainConfig, flatten, with_values
from wsl.errors import WslError
from wsl.objectives import objective_columns, objective_weights, objectives

VERSION = table.VALIDATION_FROM  # 3: figures on validation; 2: on test (``upgrade``); 1: train.zoo ignored zoo


@dataclass
class Param:
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None
    value: Any = None

    def kind(self, key: str) -> str:
        """``range``, ``choice`` or ``fixed``; exactly one must be given."""
        given = [
            kind
            for kind, on in (
                ("range", self.low is not None or self.high is not None),
                ("choice", self.choices is not None),
                ("fixed", self.value is not None),
            )
            if on
        ]
        if len(given) != 1:
            raise WslError(f"sweep space {key}: give exactly one of low/high, choices or value (got {given or 'none'})")
        return given[0]

    def check(self, key: str) -> None:
        kind = self.kind(key)
        if kind == "range":
            if self.low is None or self.high is None or not self.low < self.high:
                raise WslError(f"sweep space {key}: range low={self.low} high={self.high} is empty or inverted")
            if self.log and self.low <= 0:
                raise WslError(f"sweep space {key}: a log range needs low > 0 (got {self.low})")
        if kind == "choice" and not self.choices:
            raise WslError(f"sweep space {key}: choices is empty")

    def edges(self, key: str) -> list[Any]:
        """The values to check before a sweep starts: a range's bounds, every choice, or the fixed value."""
        kind = self.kind(key)
        if kind == "range":
            return [int(self.low), int(self.high)] if self.integer else [self.low, self.high]
        return list(self.choices) if kind == "choice" else [self.value]


@dataclass
class SearchConfig:
    # optuna (TPE; ASHA-stopped trials told as pruned) | optuna-stock (told complete) | nsga2 (several objectives
    # only: Optuna's NSGA-II) | random
    algorithm: str = "optuna"
    num_samples: int = 24
    max_concurrent: int = 2
    seed: int = 0
    startup: int = 4  # TPE's random start-up trials (at least max_concurrent: the first batch is drawn blind)
    points_to_evaluate: list[dict[str, Any]] = field(default_factory=list)  # dotted key -> value
    # earlier sweeps (names or globs) whose trials seed the Optuna study; one name alone may be given as text
    warm_start: Any = field(default_factory=list)


@dataclass
class SchedulerConfig:
    kind: str = "asha"  # asha | fifo (no early stopping)
    max_t: int = 12  # epochs of a trial that is not stopped early
    grace_period: int = 2
    reduction_factor: int = 3
    brackets: int = 1  # ASHA's brackets: more hedge against a misleading first rung, at more compute


@dataclass
class ResourcesConfig:
    cpus: float = 1.0
    gpus: float | None = None  # None: 0.25 per trial when the cluster has GPUs, else 0


@dataclass
class TrackingConfig:
    """Where else every trial's epochs go, for people to watch (``wsl.sweep.tracking``); the table stays the record."""

    kind: str | None = None  # null | mlflow | wandb
    uri: str | None = None  # mlflow: its tracking URI; null: sqlite:///results/NAME/mlflow.db
    project: str | None = None  # wandb: its project; null: the sweep's name


@dataclass
class SweepConfig:
    version: int = VERSION
    name: str = "default"
    zoo: str = "zoos/digits-cnn"
    storage: str | None = None  # Ray Tune storage_path (shared storage on a cluster); default: results/<name>
    # a weighted sum of wsl.metrics.SCORES, maximised; or a list of them, all maximised: the Pareto front
    objective: Any = "0.5*rec_agreement + 0.5*probe_r2"
    max_failures: int = 1  # retries of a crashing trial before it is recorded as errored
    train: TrainConfig = field(default_factory=TrainConfig)
    space: dict[str, dict[str, Param]] = field(default_factory=dict)
    search: SearchConfig = field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self):
        self.space = {
            section: {name: _param(f"{section}.{name}", p) for name, p in group.items()}
            for section, group in self.space.items()
        }
        table.check_name(self.name)
        if self.train.zoo == TrainConfig.zoo:  # left at its default: the sweep's zoo is the one
            self.train = replace(self.train, zoo=self.zoo)
        if self.train.zoo != self.zoo:
            raise WslError(
                f"train.zoo={self.train.zoo!r} differs from the sweep's zoo={self.zoo!r}: a sweep trains on its "
                "zoo, so set zoo= alone (sweeps/sweep.yaml passes it on to train.zoo)"
            )
        self.objective = check_objective(self.objective)
        for key, param in self.params().items():
            check_key(key)
            param.check(key)
            # one value at a time: a clash of two searched values (d_model 36 with 8 heads) still
            # shows only in the trial that draws both, which is retried and then recorded as errored
            for value in param.edges(key):
                self._check_trial({key: value}, f"sweep space {key}={value!r}, with the rest from the base config")
        for point in self.search.points_to_evaluate:
            for key in point:
                if key not in self.params():
                    raise WslError(f"search.points_to_evaluate names {key!r}, which is not in the sweep space")
        for point in self.points():
            self._check_trial(point, f"search.points_to_evaluate {point}")
        self._check_choice(
            "search.algorithm",
            self.search.algorithm,
            ("optuna", "optuna-stock", "nsga2", "random"),
            "scheduler.kind",
            self.scheduler.kind,
            ("asha", "fifo"),
            "tracking.kind",
            self.tracking.kind,
            (None, "mlflow", "wandb"),
        )
        s = self.scheduler
        if s.grace_period < 1 or s.max_t < s.grace_period:
            raise WslError(f"scheduler.max_t={s.max_t} must be >= scheduler.grace_period={s.grace_period} >= 1")
        if s.reduction_factor < 2:
            raise WslError(f"scheduler.reduction_factor={s.reduction_factor} must be >= 2")
        if s.brackets < 1:
            raise WslError(f"scheduler.brackets={s.brackets} must be >= 1")
        if self.search.algorithm == "nsga2" and not self.multi_objective:
            raise WslError("search.algorithm=nsga2 needs several objectives (objective=[a,b]); one is TPE's (optuna)")
        if self.search.startup < 1:
            raise WslError(f"search.startup={self.search.startup} must be >= 1")
        if isinstance(self.search.warm_start, str):  # search.warm_start=NAME on the command line
            self.search.warm_start = [self.search.warm_start]
        if not all(isinstance(p, str) for p in self.search.warm_start):
            raise WslError(f"search.warm_start={self.search.warm_start!r}: give sweep names or globs")
        if self.search.warm_start and self.search.algorithm == "random":
            raise WslError("search.warm_start seeds an Optuna study: it needs search.algorithm=optuna or optuna-stock")
        if self.search.num_samples < 1 or self.search.max_concurrent < 1:
            raise WslError("search.num_samples and search.max_concurrent must be >= 1")
        if self.resources.cpus <= 0 or (self.resources.gpus or 0) < 0:
            raise WslError(f"resources cpus={self.resources.cpus} gpus={self.resources.gpus}: need cpus > 0, gpus >= 0")

    def _check_trial(self, values: dict[str, Any], what: str) -> None:
        """A value no trial could train with is bad input: say so now, not after trials crash on it."""
        try:
            with_values(self.train, values)
        except (WslError, TypeError) as e:
            raise WslError(f"{what}: {e}") from None

    @staticmethod
    def _check_choice(*triples) -> None:
        for key, value, allowed in zip(triples[::3], triples[1::3], triples[2::3], strict=True):
            if value not in allowed:
                names = ", ".join("null" if a is None else a for a in allowed)
                raise WslError(f"{key}={value!r} is unknown; choose from {names}")

    @property
    def multi_objective(self) -> bool:
        """Several objectives: Optuna proposes and ASHA stops on all of them, and the answer is a front."""
        return len(self.objectives()) > 1

    def objectives(self) -> dict[str, dict[str, float]]:
        """Each objective's column (``objective_columns``) and its metrics' weights, in the order given."""
        return objectives(self.objective)

    def objective_values(self, metrics: dict, prefix: str = "") -> dict[str, float]:
        """The objectives of one epoch's (or one final run's) ``metrics``, by column; ``prefix="test_"``: of its
        test figures, under ``test_``-prefixed columns."""
        return {
            prefix + column: sum(w * metrics[prefix + m] for m, w in weights.items())
            for column, weights in self.objectives().items()
        }

    def points(self) -> list[dict[str, Any]]:
        """``search.points_to_evaluate`` completed: a searched key a point leaves out takes the base config's value."""
        base = flatten(asdict(self.train))
        return [{k: point.get(k, base[k]) for k in self.searched()} for point in self.search.points_to_evaluate]

    def params(self) -> dict[str, Param]:
        """The space flattened to ``dotted key -> Param``."""
        return space_params(self.space)

    def searched(self) -> dict[str, Param]:
        """The keys the search draws (see ``searched``)."""
        return searched(self.params())

    def fixed(self) -> dict[str, Any]:
        """The keys the space sets to one ``value``: ``dotted key -> value``."""
        return {k: p.value for k, p in self.params().items() if k not in self.searched()}


def space_params(space: dict) -> dict[str, Param]:
    """A space (``section -> field -> Param``, or a saved ``sweep.yaml``'s plain dicts) as ``dotted key -> Param``."""
    return {f"{s}.{name}": _param(f"{s}.{name}", p) for s, group in space.items() for name, p in (group or {}).items()}


def searched(params: dict[str, Param]) -> dict[str, Param]:
    """The searched keys of ``params``: ranges and choices. A fixed ``value`` is set, not searched: it is no
    column of the search, of the report's importances or of what a warm start compares as searched."""
    return {k: p for k, p in params.items() if p.kind(k) != "fixed"}


def check_objective(objective) -> str | list[str]:
    """``objective`` as given (a text, or a list of texts; a list of one is its text), checked."""
    if isinstance(objective, list | tuple) and len(objective) == 1:
        objective = objective[0]
    if isinstance(objective, str):
        objective_weights(objective)
        return objective
    if not isinstance(objective, list | tuple) or not objective or not all(isinstance(o, str) for o in objective):
        raise WslError(f"objective={objective!r}: give a weighted sum of metrics, or a list of them ([a, b])")
    columns = objective_columns(list(objective))
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise WslError(f"objective={list(objective)!r} names {', '.join(twice)} twice: each objective once")
    return list(objective)


def _param(key: str, p) -> Param:
    """OmegaConf leaves a Param nested two dicts deep as a plain dict; check its keys as it would."""
    if isinstance(p, Param):
        return p
    if not isinstance(p, dict) or set(p) - {f.name for f in fields(Param)}:
        raise WslError(
            f"sweep space {key}: {p!r} is not a range, choice list or value; use keys low, high, log, integer, "
            "choices or value"
        )
    return Param(**p)


def check_key(key: str) -> None:
    """A dotted ``section.field`` key must name a field of TrainConfig."""
    node: Any = TrainConfig
    for part in key.split("."):
        names = {f.name: f for f in fields(node)} if is_dataclass(node) else {}
        if part not in names:
            raise WslError(f"sweep space {key!r}: {part!r} is not a training config field; see sweeps/train.yaml")
        node = names[part].default_factory() if callable(names[part].default_factory) else None


def upgrade(tree: dict) -> dict:
    """A saved ``sweep.yaml`` (plain dict) in today's format; its ``version`` stays what it was written as.

    Version 1 (no ``version`` key) kept a second zoo under ``train.zoo`` that
    ignored ``zoo=``; the sweep's own ``zoo`` is the one its trials trained on.
    Versions 1 and 2 computed every metric on the zoo's test models (what
    ``version`` keeps telling: ``table.metrics_split``); nothing in the config
    changed with it.
    """
    if tree.get("version", 1) < 2:
        zoo = tree.get("zoo", SweepConfig.zoo)
        tree = {**tree, "version": 2, "train": {**tree.get("train", {}), "zoo": zoo}}
    return tree
