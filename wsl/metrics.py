"""The names of what a training run reports: the results table's metric columns (DESIGN.md, Metrics).

One list, read by the table writer, the objective check, promotion and the
queries, so that a new metric in ``wsl.evaluate`` or ``wsl.generate`` is one edit here. Names only,
no imports: every layer may read it.
"""

EPOCH = (
    "epoch",
    "loss",
    "loss_struct",
    "loss_contrast",
    "loss_behav",
    "val_loss_struct",
    "rec_acc",
    "rec_acc_ratio",
    "rec_agreement",
    "rec_agreement_working",
    "rec_acc_ratio_working",
    "rec_agreement_broken",
    "rec_acc_broken",
    "orig_acc_broken",
    "rec_acc_corr",
    "probe_r2",
    "probe_tau",
    "probe_r2_later",
    "probe_tau_later",
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
"""The epoch metrics that judge a run, higher is better: what a sweep's objective may weigh."""

END = (
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
    "gen_acc",
    "gen_novelty",
    "noise_acc",
    "noise_novelty",
    "avg_acc",
    "avg_novelty",
)
"""Reported once, at the end of a run: the probe's extra targets, the baselines on the probe's rows
(``baseline_*`` ridge on weight statistics; with ``eval.baselines`` also ``boost_*`` boosting on them and
``meta_*`` boosting on metadata) and, when the run generates models, generation beside its two baselines."""

BEST = ("objective", "rec_acc_ratio", "probe_r2")
"""Kept per trial in ``trials.parquet`` as ``best_<name>``: the best over its epochs."""

FINAL = ("objective", *SCORES, "val_loss_struct", *END)
"""A promoted run's metrics: averaged over its seeds into the PROMOTED row (``<name>`` and ``<name>_std``)."""

SHOWN = ("objective", "rec_acc_ratio", "probe_r2", "rec_agreement")
"""The metric columns ``wsl results`` shows by default, in this order."""

SUMMARY = (
    "objective",
    "rec_acc_ratio",
    "rec_agreement",
    "rec_acc",
    "probe_r2",
    "probe_tau",
    "probe_r2_epoch",
    "probe_r2_gap",
    "baseline_r2",
    "baseline_tau",
    "gen_acc",
    "gen_novelty",
)
"""A promoted run in brief (``wsl promote``'s table, the report's promoted section), where reported."""
