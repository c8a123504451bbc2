"""The results tables as a reader sees them: load, query, Pareto front, render, export, watch."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from wsl import results
from wsl.errors import WslError
from wsl.results import export, load, pareto_front, query, render, snapshot
from wsl.table import write as write_parquet


def trial(sweep: str, i: int, beta: float, rec: float, r2: float, status: str = "TERMINATED") -> dict:
    """One trials.parquet row following the schema (config, last and best metrics, bookkeeping)."""
    objective = float("nan") if status == "ERROR" else 0.5 * rec + 0.5 * r2
    return {
        "sweep": sweep,
        "trial_id": f"{sweep}-{i}",
        "status": status,
        "loss.gamma": 0.05,
        "loss.beta": beta,
        "loss.probe_size": 64,
        "tokens.width": 16,
        "optim.lr": 1e-4,
        "optim.epochs": 4,
        "model.latent_dim": 8,
        "seed": 0,
        "epoch": 4,
        "loss": 0.3,
        "rec_acc": rec * 0.9,
        "rec_acc_ratio": rec,
        "rec_agreement": rec - 0.1,
        "probe_r2": r2,
        "probe_tau": r2 - 0.1,
        "objective": objective,
        "best_objective": objective,
        "best_rec_acc_ratio": rec,
        "best_probe_r2": r2,
        "epochs": 2 if status == "STOPPED" else 4,
        "stopped_early": status == "STOPPED",
        "wall_time_s": 12.5,
        "checkpoint": None if status == "ERROR" else f"/ckpt/{sweep}-{i}",
        "error": "boom" if status == "ERROR" else None,
    }


@pytest.fixture
def root(tmp_path):
    """Two sweeps with mixed statuses, plus one whose table is not written yet."""
    a = [
        trial("paper-a", 0, 0.1, 0.9, 0.7),
        trial("paper-a", 1, 0.5, 0.8, 0.9, "STOPPED"),
        trial("paper-a", 2, 1.0, 0.95, 0.2, "RUNNING"),
        trial("paper-a", 3, 0.3, 0.1, 0.1, "ERROR"),
    ]
    b = [trial("paper-b", 0, 0.05, 0.85, 0.85), trial("paper-b", 1, 0.7, 0.6, 0.5)]
    write_parquet(tmp_path / "paper-a" / "trials.parquet", a)
    write_parquet(tmp_path / "paper-b" / "trials.parquet", b)
    epochs = [
        {"sweep": "paper-a", "trial_id": "paper-a-0", "epoch": e, "objective": e / 4, "reported_at": 1e9 + e}
        for e in range(1, 5)
    ]
    write_parquet(tmp_path / "paper-a" / "epochs.parquet", epochs)
    (tmp_path / "starting").mkdir()
    return tmp_path


@pytest.fixture
def trials(root):
    return load("paper-*", root=root)


# ---------------------------------------------------------------- load


def test_load_one_sweep_reads_its_rows(root):
    frame = load("paper-a", root=root)
    assert list(frame["trial_id"]) == [f"paper-a-{i}" for i in range(4)]
    assert set(frame["status"]) == {"TERMINATED", "STOPPED", "RUNNING", "ERROR"}


def test_load_glob_concatenates_sweeps_told_apart_by_the_sweep_column(root):
    frame = load("paper-*", root=root)
    assert frame.groupby("sweep").size().to_dict() == {"paper-a": 4, "paper-b": 2}


def test_load_labels_which_models_the_metrics_are_on(root):
    (root / "paper-a" / "sweep.yaml").write_text("version: 2\nname: paper-a\n")  # an earlier wsl's sweep
    (root / "paper-b" / "sweep.yaml").write_text("version: 3\nname: paper-b\n")
    frame = load("paper-*", root=root)
    assert frame.groupby("sweep")["metrics_split"].unique().map(list).to_dict() == {
        "paper-a": ["test"],
        "paper-b": ["val"],
    }
    note = results.split_note(frame)
    assert "paper-a (written before version 3): on the zoo's test models" in note and "do not compare" in note


def test_a_table_without_its_sweep_yaml_is_on_models_unknown(root):
    note = results.split_note(load("paper-a", root=root))
    assert "paper-a (no sweep.yaml): on models unknown" in note and "do not compare" not in note


def test_validation_figures_alone_need_no_note(root):
    for name in ("paper-a", "paper-b"):
        (root / name / "sweep.yaml").write_text(f"version: 3\nname: {name}\n")
    assert results.split_note(load("paper-*", root=root)) is None


def test_load_epochs_table(root):
    assert list(load("paper-a", table="epochs", root=root)["epoch"]) == [1, 2, 3, 4]


def test_load_defaults_to_wsl_results(root, monkeypatch):
    monkeypatch.setenv("WSL_RESULTS", str(root))
    assert results.results_root() == root
    assert len(load("paper-b")) == 2


def test_load_missing_sweep_names_the_path_and_the_sweeps_there(root):
    with pytest.raises(WslError, match="no sweep") as e:
        load("nope", root=root)
    assert str(root / "nope") in str(e.value) and "paper-a" in str(e.value)


def test_load_sweep_without_table_names_the_missing_file(root):
    with pytest.raises(WslError, match="does not exist") as e:
        load("starting", root=root)
    assert str(root / "starting" / "trials.parquet") in str(e.value)


def test_load_corrupt_parquet_names_the_file(root):
    (root / "paper-b" / "trials.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(WslError, match="cannot read") as e:
        load("paper-*", root=root)
    assert str(root / "paper-b" / "trials.parquet") in str(e.value)


def test_load_rejects_a_name_that_is_a_path(root):
    with pytest.raises(WslError, match="invalid"):
        load("../paper-a", root=root)


# ---------------------------------------------------------------- query


def test_where_with_short_names(trials):
    rows = query(trials, where="beta < 0.5 and probe_r2 > 0.5")
    assert set(rows["trial_id"]) == {"paper-a-0", "paper-b-0"}


@pytest.mark.parametrize("where", ["`loss.beta` < 0.5", "loss.beta < 0.5", "`beta` < 0.5"])
def test_where_with_dotted_names_bare_or_quoted(trials, where):
    assert set(query(trials, where=where)["trial_id"]) == {"paper-a-0", "paper-a-3", "paper-b-0"}


def test_where_keeps_strings_and_metric_loss_apart_from_config_names(trials):
    rows = query(trials, where="status in ['RUNNING', 'STOPPED'] and loss < 1 and loss.gamma == 0.05")
    assert set(rows["trial_id"]) == {"paper-a-1", "paper-a-2"}


def test_where_unknown_name_lists_the_available_columns(trials):
    with pytest.raises(WslError, match="unknown column 'betta'") as e:
        query(trials, where="betta < 0.5")
    assert "did you mean beta" in str(e.value) and "loss.beta" in str(e.value) and "probe_r2" in str(e.value)


def test_where_unknown_dotted_name_is_reported_whole(trials):
    with pytest.raises(WslError, match="unknown column 'loss.betaa'"):
        query(trials, where="loss.betaa < 0.5")


def test_where_that_does_not_parse_is_a_wsl_error(trials):
    with pytest.raises(WslError, match="cannot evaluate"):
        query(trials, where="beta <")


def test_sort_defaults_to_objective_descending_with_nan_last(trials):
    objective = list(query(trials)["objective"])
    assert objective[:-1] == sorted(objective[:-1], reverse=True) and math.isnan(objective[-1])


def test_sort_by_short_name_ascending_top_and_columns(trials):
    rows = query(trials, sort="beta", ascending=True, top=2, columns=["trial_id", "beta", "probe_r2"])
    assert list(rows.columns) == ["trial_id", "loss.beta", "probe_r2"]
    assert list(rows["trial_id"]) == ["paper-b-0", "paper-a-0"]


@pytest.mark.parametrize("arg", [{"sort": "nope"}, {"columns": ["trial_id", "nope"]}])
def test_unknown_sort_or_column_name_is_one_error(trials, arg):
    with pytest.raises(WslError, match="unknown column 'nope'.*available columns: sweep, trial_id"):
        query(trials, **arg)


def test_ambiguous_short_name_asks_for_the_full_name():
    frame = pd.DataFrame({"model.width": [1], "tokens.width": [2]})
    with pytest.raises(WslError, match="ambiguous.*model.width, tokens.width"):
        query(frame, sort="width")


def test_top_below_one_is_rejected(trials):
    with pytest.raises(WslError, match="top=0"):
        query(trials, top=0)


# ---------------------------------------------------------------- Pareto front


def test_pareto_front_of_a_hand_made_set():
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e", "f", "g", "h"],
            "rec_agreement": [0.9, 0.8, 0.7, 0.85, 0.9, 0.6, float("nan"), 0.8],
            "probe_r2": [0.5, 0.7, 0.9, 0.6, 0.4, 0.9, 1.0, 0.7],
        }
    )
    # e is beaten by a (same x, lower y), f by c (same y, lower x), d by nobody, g has NaN, h equals b.
    assert list(pareto_front(frame)["id"]) == ["c", "b", "h", "d", "a"]


def test_pareto_front_of_the_trials_ignores_the_errored_trial(trials):
    assert list(pareto_front(trials)["trial_id"]) == ["paper-a-1", "paper-b-0", "paper-a-0", "paper-a-2"]


def dominates(p, q) -> bool:
    return all(a >= b for a, b in zip(p, q, strict=True)) and any(a > b for a, b in zip(p, q, strict=True))


VALUE = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, float("nan")]) | st.floats(-1, 1)


@given(st.integers(2, 3).flatmap(lambda k: st.lists(st.tuples(*[VALUE] * k), max_size=30)))
@settings(derandomize=True, max_examples=300)
def test_pareto_front_is_exactly_the_non_dominated_rows_on_two_or_three_columns(points):
    columns = ["x", "y", "z"][: len(points[0])] if points else ["x", "y"]
    frame = pd.DataFrame(points, columns=columns, dtype=float)
    front = list(pareto_front(frame, *columns).itertuples(index=False, name=None))
    valid = [p for p in points if not any(math.isnan(v) for v in p)]
    assert not any(dominates(p, f) for f in front for p in valid)
    assert all(any(dominates(f, p) for f in front) for p in valid if p not in front)
    assert front == sorted(front)


# ---------------------------------------------------------------- render, export, watch


def headers(table) -> list[str]:
    return [str(c.header) for c in table.columns]


def test_render_default_columns_show_who_what_varies_and_metrics(trials):
    table = render(query(trials), title="t")
    assert headers(table) == [
        "sweep",
        "trial_id",
        "status",
        "beta",
        "epochs",
        "objective",
        "rec_acc_ratio",
        "probe_r2",
        "rec_agreement",
    ]
    assert table.row_count == 6


def test_a_listing_shows_a_multi_objective_sweeps_objectives_before_the_default_metrics(root):
    """A sweep on (rec_agreement_working, rec_agreement_broken, probe_r2): the first two are none of the metrics
    a listing shows by default, and a front ranked on them must show them."""
    frame = load("paper-b", root=root).assign(rec_agreement_working=[0.8, 0.7], rec_agreement_broken=[0.2, 0.6])
    (root / "paper-b" / "sweep.yaml").write_text(
        "version: 3\nname: paper-b\nobjective: [rec_agreement_working, rec_agreement_broken, probe_r2]\n"
    )
    objectives = results.shown_objectives("paper-*", root)
    assert objectives == ["rec_agreement_working", "rec_agreement_broken", "probe_r2"]
    shown = headers(render(query(frame), objectives=objectives))
    assert shown[shown.index("epochs") + 1 :] == [*objectives, "objective", "rec_acc_ratio", "rec_agreement"]


def promoted(source: dict, gen_acc: float) -> dict:
    """A PROMOTED row as ``wsl promote`` appends it: the source's config, end-of-run metrics, provenance."""
    return {
        **source,
        "trial_id": f"{source['trial_id']}-promoted",
        "status": "PROMOTED",
        "source_trial": source["trial_id"],
        "seeds": 3,
        "config_file": f"sweeps/promoted/{source['trial_id']}.yaml",
        "gen_acc": gen_acc,
        "noise_acc": gen_acc / 2,
        "baseline_r2": gen_acc + 0.1,
        "probe_r2_gap": gen_acc - 0.5,
    }


def test_render_default_columns_leave_out_promoted_rows_metrics_and_provenance(trials):
    top2 = [promoted(trials.iloc[i].to_dict(), 0.6 + i / 10) for i in (0, 1)]
    table = render(query(pd.concat([trials, pd.DataFrame(top2)], ignore_index=True)), title="t")
    assert headers(table)[3:5] == ["beta", "epochs"]


def test_render_formats_floats_and_missing_values(trials):
    table = render(query(trials, sort="beta", ascending=True), columns=["trial_id", "lr", "objective", "error"])
    cells = {str(c.header): list(c.cells) for c in table.columns}
    assert cells["lr"][0] == "1.00e-04"
    assert cells["objective"][0] == "0.850"
    assert "-" in cells["objective"] and cells["error"][0] == "-"


def test_render_keeps_the_full_name_where_the_short_one_is_ambiguous():
    df = pd.DataFrame({"loss.temperature": [0.1, 0.2], "model.temperature": [1.0, 2.0], "optim.lr": [1e-3, 2e-3]})
    assert headers(render(df, columns=["loss.temperature", "model.temperature", "lr"])) == [
        "loss.temperature",
        "model.temperature",
        "lr",
    ]


def test_render_epochs_table_shows_epoch_not_arrival_time(root):
    assert headers(render(load("paper-a", "epochs", root=root))) == ["trial_id", "epoch", "objective"]


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_export_round_trips(trials, tmp_path, suffix):
    rows = query(trials, columns=["trial_id", "status", "beta", "probe_r2", "objective"])
    path = export(rows, tmp_path / "out" / f"top{suffix}")
    back = pd.read_csv(path) if suffix == ".csv" else pd.DataFrame(json.loads(path.read_text()))
    pd.testing.assert_frame_equal(back, rows, check_dtype=False)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_export_unknown_suffix_is_rejected_and_writes_nothing(trials, tmp_path):
    with pytest.raises(WslError, match=r"\.csv or \.json"):
        export(trials, tmp_path / "top.xlsx")
    assert not (tmp_path / "top.xlsx").exists()


def test_snapshot_renders_the_top_rows_of_a_query(root):
    table = snapshot("paper-*", root=root, top=3, where="status != 'ERROR'", columns=["trial_id", "objective"])
    assert headers(table) == ["trial_id", "objective"] and table.row_count == 3


def test_watch_redraws_until_ctrl_c(root, monkeypatch):
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(results.time, "sleep", sleep)
    console = Console(record=True, width=200)
    results.watch("paper-a", every=0.5, root=root, console=console, columns=["trial_id", "status"])
    assert naps == [0.5, 0.5] and "paper-a-3" in console.export_text()


def test_watch_shows_a_missing_table_instead_of_failing(root, monkeypatch):
    monkeypatch.setattr(results.time, "sleep", lambda s: (_ for _ in ()).throw(KeyboardInterrupt))
    console = Console(record=True, width=300)
    results.watch("starting", every=1, root=root, console=console)
    assert "does not exist" in console.export_text()


def test_the_query_layer_imports_neither_torch_nor_ray():
    """`wsl results` reads tables: importing torch would cost it a second of its start-up (issue 30)."""
    code = "import sys, wsl.results; print(sorted(m for m in ('torch', 'ray', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
