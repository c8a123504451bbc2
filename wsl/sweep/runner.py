"""Run a sweep on Ray Tune: one trial = one ``wsl.train.train`` call, reporting every epoch.

    driver: check config, load the zoo once -> ray.init (local, or --address / RAY_ADDRESS)
            -> Tuner(OptunaSearch + ASHA, results-table callback) -> fit
    trial:  TrainConfig = base + sampled values -> train(cfg, report) where report
            adds the objective(s) and hands metrics + checkpoint to ``tune.report``

The zoo travels to the trials through Ray's object store (``tune.with_parameters``),
not re-read from disk by each trial: held once per node, its weights and task data
pickled as numpy arrays that every trial there views in place (``wsl.zoo.pickling``).
A killed driver leaves ``results/NAME/tune``, which ``resume_sweep`` continues with
``Tuner.restore`` (searcher state included; the multi-objective ASHA's rungs are rebuilt
from the epochs table, ``search.RestoreRungs``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import ray
import torch
import yaml
from ray import tune

from wsl import table
from wsl.atomic import write_text
from wsl.config import TrainConfig, flatten, with_values
from wsl.errors import WslError
from wsl.run import CHECKPOINT
from wsl.sweep import search, tracking, warmstart
from wsl.sweep.config import VERSION, SweepConfig
from wsl.sweep.progress import LiveView
from wsl.sweep.recorder import TableRecorder
from wsl.sweep.storage import check_state, check_storage, experiment_path, filesystem
from wsl.train import train
from wsl.zoo.store import Zoo, load_zoo

# One per worker process. Tune reuses a trial's actor for the next trial of the same sweep (same zoo), so the
# behavioral targets of each probe set are computed once per worker, not once per trial (~2 s each on a CPU).
MEMO: dict = {}
MEMO_ENTRIES = 4  # distinct probe sets kept (each [rows, probe_size, classes] floats: 16 MB at probe 256)


def run_trial(config: dict, zoo: Zoo, sweep: SweepConfig, threads: int) -> None:
    """One Tune trial. ``config`` holds the sampled dotted values of the ``sweep``'s space."""
    torch.set_num_threads(threads)
    cfg = with_values(trial_base(sweep), config)
    restored = tune.get_checkpoint()
    with tempfile.TemporaryDirectory() as out:
        if restored is not None:
            with restored.as_directory() as src:
                shutil.copy(Path(src) / CHECKPOINT, Path(out) / CHECKPOINT)

        def report(metrics: dict) -> None:
            values = sweep.objective_values(metrics)
            tune.report({**metrics, **values}, checkpoint=tune.Checkpoint.from_directory(out))

        train(replace(cfg, out=out), report, zoo=zoo, resume=restored is not None, memo=MEMO)
    while len(MEMO) > MEMO_ENTRIES:
        MEMO.pop(next(iter(MEMO)))  # the least recently used
    release_freed_memory()


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``; nothing where the C library is
    another). Tune runs trial after trial in one worker, and glibc keeps what a run freed, fragmented: a run
    holds about 0.5 GB of free heap at its end on the default zoo (benchmarks/RESULTS.md, "Working memory of a
    run"), which a worker would otherwise carry into its next trial."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return


def start_ray(address: str | None) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``), else start a local Ray on this machine; quiet trial logs."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Checkpointing every epoch is the point (resume); Tune's warning about it is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # With the legacy output engine, verbose=0 is silent: LiveView is the progress view.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    except ConnectionError as e:
        raise WslError(
            f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0]}. Is it running (`ray status`)? "
            "Clusters started by Ray >= 2.52 use token authentication: set RAY_AUTH_MODE=token and provide the "
            "cluster's token (~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)"
        ) from None


TRIAL_ONLY = ("optim.epochs", "generate", "eval.baselines", "eval.test")
"""The keys a trial runs with other values than the sweep's training config says (``trial_only``)."""


def trial_only(cfg: SweepConfig) -> dict:
    """A trial's values of ``TRIAL_ONLY``: ``scheduler.max_t`` epochs and no end-of-run evaluation. A trial
    never reads the test models (what it reports is what the sweep decides by), and the baselines and
    generation cost seconds a trial for figures promotion reports."""
    return dict(zip(TRIAL_ONLY, (cfg.scheduler.max_t, 0, False, False), strict=True))


def trial_base(cfg: SweepConfig) -> TrainConfig:
    """The training config every trial starts from: the sweep's, with ``trial_only``."""
    return with_values(cfg.train, trial_only(cfg))


def trial_resources(cfg: SweepConfig) -> dict[str, float]:
    """CPUs and GPUs of one trial (or promoted seed); ``gpus: null`` means 0.25 when the cluster has GPUs now."""
    gpus = cfg.resources.gpus
    if gpus is None:
        gpus = 0.25 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return {"cpu": cfg.resources.cpus, "gpu": gpus}


def trainable(cfg: SweepConfig, zoo: Zoo):
    fn = tune.with_parameters(run_trial, zoo=zoo, sweep=cfg, threads=max(1, int(cfg.resources.cpus)))
    return tune.with_resources(fn, trial_resources(cfg))


def run_config(cfg: SweepConfig, directory: Path, scheduler) -> tune.RunConfig:
    """Where Tune keeps its state, how often a trial is retried, and the callbacks: the table, the live view,
    trackers, and (``scheduler`` multi-objective) the rebuilding of its rungs when the sweep resumes."""
    storage_filesystem, storage_path = filesystem(experiment_path(cfg, directory))
    objectives = list(cfg.objectives())
    return tune.RunConfig(
        name="tune",
        storage_path=storage_path,
        storage_filesystem=storage_filesystem,
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        callbacks=[
            TableRecorder(
                directory.resolve(), cfg.name, flatten(asdict(trial_base(cfg))), cfg.scheduler.max_t, objectives
            ),
            LiveView(cfg.scheduler.max_t, objectives),
            *tracking.callbacks(cfg, directory),
            *search.rung_keepers(scheduler, directory.resolve(), objectives),
        ],
        verbose=0,
    )


def run_sweep(cfg: SweepConfig, root: Path, address: str | None = None) -> Path:
    """Start a new sweep; everything is checked before anything is written or started.

    With ``search.warm_start``, the earlier sweeps' trials are put in the
    Optuna study before the first proposal (``wsl.sweep.warmstart``).

    A failure before the first trial starts removes the sweep directory again,
    so a mistake (an unreachable ``storage=``, say) does not block the name.
    """
    directory = Path(root) / table.check_name(cfg.name)
    if directory.exists():
        raise WslError(f"sweep {cfg.name!r} exists already at {directory}; pass --resume {cfg.name} or name=<new>")
    seeds = warmstart.seeds(cfg, Path(root)) if cfg.search.warm_start else None
    tracking.prepare(cfg)
    zoo = load_zoo(cfg.zoo)
    start_ray(address)
    check_storage(cfg)
    directory.mkdir(parents=True)
    try:
        # this wsl's version, whatever the composed config said: it tells which models the table's figures are on
        saved = {**asdict(cfg), "version": VERSION}
        write_text(directory / table.SWEEP_FILE, yaml.safe_dump(saved, sort_keys=False))
        if seeds is not None:
            storage = search.study_storage(directory / table.JOURNAL)
            warmstart.seed_study(storage, cfg.name, seeds.trials, len(cfg.objectives()))
            print(seeds.summary(), flush=True)
        scheduler = search.scheduler(cfg)
        tuner = tune.Tuner(
            trainable(cfg, zoo),
            param_space=search.tune_space(cfg),
            tune_config=tune.TuneConfig(
                search_alg=search.searcher(cfg, directory / table.JOURNAL),
                scheduler=scheduler,
                num_samples=cfg.search.num_samples,
                reuse_actors=True,  # a trial ASHA stops after one epoch should not pay for a new process and imports
                trial_dirname_creator=lambda trial: trial.trial_id,
            ),
            run_config=run_config(cfg, directory, scheduler),
        )
    except BaseException as e:
        shutil.rmtree(directory, ignore_errors=True)
        if isinstance(e, OSError):  # Tune makes its directory under storage= here
            raise WslError(f"cannot set up sweep {cfg.name!r} at {experiment_path(cfg, directory)}: {e}") from None
        raise
    tuner.fit()
    return directory


def resume_sweep(cfg: SweepConfig, root: Path, address: str | None = None) -> Path:
    """Continue a sweep whose driver died: unfinished trials resume from their checkpoints."""
    directory = Path(root) / table.check_name(cfg.name)
    if cfg.version < table.VALIDATION_FROM:
        raise WslError(
            f"sweep {cfg.name!r} was written by an earlier wsl (version {cfg.version}) whose figures are on the "
            "zoo's test models; this one reports validation figures, and a resumed sweep would mix both in one "
            "table: start a new sweep (name=<new>)"
        )
    path = f"{experiment_path(cfg, directory)}/tune"
    fs, fs_path = filesystem(path)
    if not tune.Tuner.can_restore(fs_path, storage_filesystem=fs):
        raise WslError(f"sweep {cfg.name!r} has no Tune state at {path} to resume from")
    check_state(cfg.name, path)
    tracking.prepare(cfg)
    zoo = load_zoo(cfg.zoo)
    start_ray(address)
    check_storage(cfg)
    tuner = tune.Tuner.restore(
        fs_path, trainable(cfg, zoo), resume_unfinished=True, resume_errored=False, storage_filesystem=fs
    )
    tuner.fit()
    return directory
