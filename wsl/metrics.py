"""The names of what a training run reports: the results table's metric columns (DESIGN.md, Metrics).

One list, read by the table writer, the objective check, promotion and the
queries, so that a new metric in ``wsl.evaluate`` or ``wsl.generate`` is one edit here. Names only,
no imports: every layer may read it.

Which models each column is computed on (the zoo is split by model):

| columns | split |
|---|---|
| ``loss*`` | the training models (the batches of the epoch) |
| every other unprefixed figure: ``val_loss_struct``, ``rec_*``, ``probe_*``, ``copy_*``, the baselines | validation |
| ``test_*`` | test: only at the end of ``wsl train`` and of promoted runs, never in a sweep trial |
| ``gen_*``, ``noise_*``, ``avg_*`` | new models: accuracy on the task's test inputs, novelty against training |

Whatever a sweep decides by (its objective, ASHA's stops, the promotion pick)
is a validation figure; a test figure reports on what was picked.
"""

OBJECTIVE = "objective"
"""The column of a sweep's objective (its weighted sum of ``SCORES``): what Optuna and ASHA are told, each epoch."""
PARETO_RANK = "pareto_rank"
"""A multi-objective sweep's trial's non-dominated rank among the trials that reached ``max_t`` (0: on the front)."""


def is_objective(column: str) -> bool:
    """Whether ``column`` holds an objective: ``objective``, or a weighted sum among several (``objective_2``)."""
    head, _, position = column.partition("_")
    return column == OBJECTIVE or (head == OBJECTIVE and position.isdigit())


WORKING_ACC = 0.5
"""Test accuracy from which an original counts as *working* (below it: *broken*, never learned): the default of
``eval.working_acc`` and the importers' check that working models land near their recorded accuracy."""

RECONSTRUCTION = (
    "rec_acc",
    "rec_acc_ratio",
    "rec_agreement",
    "rec_agreement_working",
    "rec_acc_ratio_working",
    "rec_agreement_broken",
    "rec_acc_broken",
    "orig_acc_broken",
    "rec_acc_corr",
)
"""Reconstructed held-out models at the zoo's last checkpoint, run as networks (``wsl.evaluate.reconstruction``)
on the task's test inputs: each epoch on ``eval.inputs`` of them (a fixed subset; null: all), at the end on all."""

PROBE = ("probe_r2", "probe_tau", "probe_r2_later", "probe_tau_later")
"""The embedding's ridge probe of test accuracy, on all held-out rows and on later checkpoints."""

COPIES = tuple(
    f"copy_{copy}_agreement_{kind}" for copy in ("best", "closest", "oracle") for kind in ("working", "broken")
)
"""Agreement baselines (``wsl.evaluate.copy_baselines``): a copied training model's agreement with the same
originals and inputs ``rec_agreement_working``/``_broken`` are measured on; the zoo's alone, the same every
epoch."""

EPOCH = (
    "epoch",
    "loss",
    "loss_struct",
    "loss_contrast",
    "loss_behav",
    "val_loss_struct",
    *RECONSTRUCTION,
    *PROBE,
    *COPIES,
    "time_s",
)
"""Reported every epoch through ``report(metrics)``; one row per epoch in ``epochs.parquet``."""

SCORES = (
    "rec_acc",
    "rec_acc_ratio",
    "rec_agreement",
    "rec_agreement_working",
    "rec_agreement_broken",
    "rec_acc_corr",
    "probe_r2",
    "probe_tau",
    "probe_r2_later",
    "probe_tau_later",
)
"""The epoch metrics that judge a run, higher is better: what a sweep's objective may weigh (validation)."""

BASELINES = (
    "probe_r2_epoch",
    "probe_tau_epoch",
    "probe_r2_gap",
    "probe_tau_gap",
    "baseline_r2",
    "baseline_tau",
    "baseline_r2_later",
    "baseline_tau_later",
    "boost_r2",
    "boost_tau",
    "boost_r2_later",
    "boost_tau_later",
    "meta_r2",
    "meta_tau",
    "meta_r2_later",
    "meta_tau_later",
)
"""At the end of a run: the probe's extra targets and the baselines on the probe's rows (``baseline_*``
ridge on weight statistics; with ``eval.baselines`` also ``boost_*`` boosting on them and ``meta_*``
boosting on metadata)."""

GENERATION = ("gen_acc", "gen_novelty", "noise_acc", "noise_novelty", "avg_acc", "avg_novelty")
"""When the run generates models: generation beside its two baselines (``wsl.generate``)."""

TEST_PREFIX = "test_"
TEST = tuple(TEST_PREFIX + name for name in (*RECONSTRUCTION, *PROBE, *COPIES, *BASELINES))
"""The same figures on the test models: computed once, at the end of a run that reports."""

END = (*BASELINES, *GENERATION, *TEST)
"""Reported once, at the end of a run (``wsl train``, a promoted seed); sweep trials report none of them."""

BEST = (OBJECTIVE, "rec_acc_ratio", "probe_r2")
"""Kept per trial in ``trials.parquet`` as ``best_<name>``: the best over its epochs."""

FINAL = (OBJECTIVE, TEST_PREFIX + OBJECTIVE, *RECONSTRUCTION, *PROBE, "val_loss_struct", *COPIES, *END)
"""A promoted run's metrics: averaged over its seeds into the PROMOTED row (``<name>``, ``<name>_std`` and,
for test figures, ``<name>_ci95``)."""

SHOWN = (OBJECTIVE, TEST_PREFIX + OBJECTIVE, "rec_acc_ratio", "probe_r2", "rec_agreement")
"""The metric columns ``wsl results`` shows by default, in this order."""

SUMMARY = (
    OBJECTIVE,
    "rec_acc_ratio",
    "rec_agreement",
    "rec_agreement_working",
    "copy_best_agreement_working",
    "copy_oracle_agreement_working",
    "rec_agreement_broken",
    "copy_best_agreement_broken",
    "rec_acc",
    "probe_r2",
    "probe_tau",
    "baseline_r2",
    "boost_r2",
    "meta_r2",
    "probe_r2_epoch",
    "probe_r2_gap",
    "gen_acc",
    "gen_novelty",
)
"""A promoted run in brief (``wsl promote``'s table, the report's promoted section): each name on validation
and, as ``test_<name>``, on test, where reported."""


def on_test(final: dict) -> dict:
    """``final`` with each ``test_<name>`` figure also under ``<name>``: for benchmark records that report the
    test models under plain names, as every figure was named before sweeps decided on validation."""
    return {**final, **{k.removeprefix(TEST_PREFIX): v for k, v in final.items() if k.startswith(TEST_PREFIX)}}
