"""``wsl report``: a sweep's results table -> one offline HTML page + PNGs, checked in a real headless Chromium."""

import os
import re
import shutil
import struct
import subprocess
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsl import results
from wsl.errors import WslError
from wsl.report import write_report

SECTIONS = ("pareto", "weighting", "importance", "curves", "promoted", "top")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SWEEP_YAML = """\
name: demo
objective: 0.5*rec_acc_ratio + 0.5*probe_r2
space:
  loss:
    gamma: {low: 0.01, high: 0.5, log: true}
    beta: {low: 0.0, high: 1.0}
  tokens:
    width: {choices: [16, 32]}
scheduler: {kind: asha, max_t: 6, grace_period: 2, reduction_factor: 3}
"""


def write_parquet(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)).to_parquet(path, index=False)


def make_sweep(root: Path, name: str = "demo", trials: int = 9, promoted: bool = True) -> Path:
    """A sweep as the runner leaves it: ASHA stopped some trials at rungs 2 and... ; one promoted final run."""
    rng = np.random.default_rng(0)
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "sweep.yaml").write_text(SWEEP_YAML)
    rows, epochs = [], []
    for i in range(trials):
        gamma, beta, width = (
            float(np.exp(rng.uniform(np.log(0.01), np.log(0.5)))),
            float(rng.uniform()),
            [16, 32][i % 2],
        )
        n_epochs = 6 if i % 3 != 2 else 2  # every third trial stopped by ASHA at the first rung
        history = []
        for epoch in range(1, n_epochs + 1):
            ratio = (1 - beta * 0.5) * (1 - np.exp(-epoch / 2)) + rng.normal(0, 0.01)
            r2 = (0.3 + 0.5 * (1 - gamma)) * (1 - np.exp(-epoch / 3)) + rng.normal(0, 0.01)
            metrics = {
                "epoch": epoch,
                "loss": 1 / epoch,
                "loss_struct": 0.5 / epoch,
                "loss_contrast": 0.2,
                "loss_behav": 0.3 / epoch,
                "val_loss_struct": 0.6 / epoch,
                "rec_acc": 0.8 * ratio,
                "rec_acc_ratio": ratio,
                "rec_agreement": 0.9 * ratio,
                "probe_r2": r2,
                "probe_tau": 0.8 * r2,
                "time_s": 1.5 * epoch,
                "objective": 0.5 * ratio + 0.5 * r2,
            }
            history.append(metrics)
            epochs.append({"sweep": name, "trial_id": f"t{i:02d}", **metrics})
        status = "TERMINATED" if n_epochs == 6 else "STOPPED"
        rows.append(
            {
                "sweep": name,
                "trial_id": f"t{i:02d}",
                "status": status,
                "loss.gamma": gamma,
                "loss.beta": beta,
                "loss.probe_size": 64,
                "tokens.width": width,
                "optim.lr": 1e-4,
                "optim.epochs": 6,
                "seed": 0,
                **history[-1],
                **{f"best_{m}": max(h[m] for h in history) for m in ("objective", "rec_acc_ratio", "probe_r2")},
                "epochs": n_epochs,
                "stopped_early": status == "STOPPED",
                "wall_time_s": 1.5 * n_epochs,
                "checkpoint": f"/ckpt/t{i:02d}",
                "error": None,
                "source_trial": None,
                "seeds": None,
            }
        )
    if promoted:
        best = max((r for r in rows if r["status"] == "TERMINATED"), key=lambda r: r["objective"])
        final = {
            **best,
            "trial_id": f"promoted-{best['trial_id']}",
            "status": "PROMOTED",
            "source_trial": best["trial_id"],
            "seeds": 3,
            "gen_acc": 0.7,
            "gen_novelty": 0.1,
            "baseline_r2": 0.5,
            "baseline_tau": 0.4,
        }
        final.update({f"{m}_std": 0.01 for m in ("objective", "rec_acc_ratio", "probe_r2")})
        rows.append(final)
        models = [
            {
                "seed": s,
                "model": m,
                "test_acc": (acc := float(rng.uniform(0.3, 0.95))),
                "rec_acc": acc - float(rng.uniform(0, 0.1)),
                "agreement": float(rng.uniform(0.7, 1.0)),
                "emb_x": acc + float(rng.normal(0, 0.05)),
                "emb_y": float(rng.normal()),
            }
            for s in range(3)
            for m in range(12)
        ]
        write_parquet(directory / "promoted" / best["trial_id"] / "models.parquet", models)
    write_parquet(directory / "trials.parquet", pd.DataFrame(rows))
    write_parquet(directory / "epochs.parquet", epochs)
    return directory


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One full report (with PNGs), built once: Chromium starts for the PNGs, which costs a few seconds."""
    root = tmp_path_factory.mktemp("results")
    make_sweep(root)
    return write_report("demo", root=root, png=CHROMIUM is not None)


def test_report_is_one_offline_page_with_every_section(report):
    text = report.read_text()
    assert report == report.parent.parent / "report" / "report.html"
    for key in SECTIONS:
        assert f'<section id="{key}">' in text, key
    # nothing is fetched when the page opens: no external script/link/img and plotly.js inlined once
    assert not re.search(r"""<(script|link|img|iframe)[^>]*(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # the bundle's banner: inlined exactly once
    assert text.count('<div id="fig-') == 7  # pareto, weighting, importance, curves, 3 for the promoted run


def test_top_table_ranks_the_trials_by_objective(report):
    trials = pd.read_parquet(report.parent.parent / "trials.parquet")
    runs = trials[trials["status"] != "PROMOTED"].sort_values("objective", ascending=False, kind="stable")
    source = trials.loc[trials["status"] == "PROMOTED", "source_trial"].item()
    expected = [f"{t} ★ promoted" if t == source else t for t in runs["trial_id"].head(10)]
    top = report.read_text().split('<section id="top">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td>", top)
    assert rows == [(str(rank), trial) for rank, trial in enumerate(expected, 1)]


def test_the_top_table_shows_values_as_wsl_results_does(report):
    top = report.read_text().split('<section id="top">', 1)[1].split("</section>", 1)[0]
    header = re.findall(r"<th[^>]*>([^<]*)</th>", top)
    first = re.findall(r"<td>([^<]*)</td>", top.split("<tbody>", 1)[1].split("</tr>", 1)[0])
    shown = dict(zip(header, first, strict=True))
    assert shown["optim.lr"] == results.cell_text(1e-4) == "1.00e-04"


def test_report_writes_a_png_per_figure(report):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    pngs = sorted(p.name for p in report.parent.glob("*.png"))
    assert {"pareto.png", "weighting.png", "importance.png", "curves.png"} <= set(pngs)
    assert sum(p.startswith("promoted-") for p in pngs) == 3
    for name in pngs:
        width, height, pixels = read_png(report.parent / name)
        assert width > 100 and height > 100, name
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20, name


def test_report_renders_in_headless_chromium(report, tmp_path):
    """Open the page as a reader would, with the network cut: no console error or warning, figures drawn."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # a fetch from the network would fail and log an error
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,4000",
            "--force-device-scale-factor=0.25",
            f"--screenshot={shot}",
            "--dump-dom",  # the whole page, at a quarter of the pixels: quick to decode
            report.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert shot.is_file(), run.stderr[-3000:]
    assert console == [], console  # plotly.js logs its warnings ("WARN: ...") and errors here
    dom = run.stdout
    for stem in ("pareto", "weighting", "importance", "curves"):
        figure = dom.split(f'id="fig-{stem}"', 1)[1].split("</section>", 1)[0]
        assert 'class="main-svg"' in figure, stem  # plotly.js replaced the empty div by its SVG
        assert re.search(r'class="(point|bars|js-line)', figure), stem  # ... with data drawn in it
    assert dom.count('class="main-svg"') >= 7
    width, height, pixels = read_png(shot)
    assert width * 4000 == height * 1400  # the whole window (its pixel scale varies with Chromium's version)
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    drawn = (pixels != pixels[0, 0]).any(axis=-1).mean()
    assert len(colours) > 100 and drawn > 0.05, (len(colours), drawn)  # colour scales and markers, not blank


def test_few_trials_and_no_promotion_give_notes_not_failures(tmp_path):
    make_sweep(tmp_path, "tiny", trials=2, promoted=False)  # t00 ran to max_t, t01 too: but only 2 finished
    trials = pd.read_parquet(tmp_path / "tiny" / "trials.parquet")
    write_parquet(tmp_path / "tiny" / "trials.parquet", trials.head(1))  # one trial only
    text = write_report("tiny", root=tmp_path, png=False).read_text()
    for key in SECTIONS:
        assert f'<section id="{key}">' in text
    assert "Parameter importance needs at least 2 trials" in text
    assert "no promoted run yet" in text
    assert 'id="fig-pareto"' in text and 'id="fig-importance"' not in text


def test_rerun_replaces_the_report_with_the_tables_rows_now(tmp_path):
    directory = make_sweep(tmp_path, promoted=False)
    first = write_report("demo", root=tmp_path, top=3, png=False)
    before = first.read_text()
    (first.parent / "stale.png").write_bytes(b"x")
    trials = pd.read_parquet(directory / "trials.parquet")
    late = trials.iloc[[0]].assign(trial_id="late-best", objective=trials["objective"].max() + 1)
    write_parquet(directory / "trials.parquet", pd.concat([trials, late]))  # a trial finished since
    second = write_report("demo", root=tmp_path, top=3, png=False)
    after = second.read_text()
    assert "late-best" not in before and "late-best" in after and not (second.parent / "stale.png").exists()
    assert after.count("<tr><td>") == 3


def test_rerun_flips_the_report_link_and_removes_the_previous_version(tmp_path):
    make_sweep(tmp_path, promoted=False)
    link = tmp_path / "demo" / "report"
    write_report("demo", root=tmp_path, png=False)
    previous = link.resolve()
    write_report("demo", root=tmp_path, png=False)
    assert link.is_symlink() and link.resolve() != previous and not previous.exists()
    hidden = [p.name for p in (tmp_path / "demo").iterdir() if p.name.startswith(".")]
    assert hidden == [os.readlink(link)]  # only the live version: no temporary or old directory left behind


def test_report_files_get_the_users_umask(tmp_path):
    make_sweep(tmp_path, promoted=False)
    mask = os.umask(0o022)
    try:
        page = write_report("demo", root=tmp_path, png=False)
    finally:
        os.umask(mask)
    assert page.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0o600
    assert page.parent.stat().st_mode & 0o777 == 0o755  # nor mkdtemp's 0o700


def test_without_a_browser_the_page_is_written_with_a_warning(tmp_path):
    if CHROMIUM is not None:
        pytest.skip("chromium is installed: the PNGs are written")
    make_sweep(tmp_path, promoted=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = write_report("demo", root=tmp_path)
    assert [(w.filename, str(w.message)[:18]) for w in caught] == [(__file__, "PNG export skipped")]
    assert "PNG export skipped" in page.read_text() and not list(page.parent.glob("*.png"))


def test_importance_ranks_the_parameter_that_drives_the_objective(tmp_path):
    from wsl.report import parameter_importances

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"loss.gamma": rng.uniform(0, 1, 30), "loss.beta": rng.uniform(0, 1, 30)})
    frame["objective"] = 3 * frame["loss.beta"] + 0.01 * frame["loss.gamma"]
    result = parameter_importances(frame, ["loss.gamma", "loss.beta"], {})
    for values in result.values():
        assert values["loss.beta"] > 0.8
    assert result == parameter_importances(frame, ["loss.gamma", "loss.beta"], {})  # seeded: deterministic


def test_importance_reads_a_mixed_choice_the_table_keeps_as_text():
    """The default space's tokens.width is [32, row]: parquet keeps the column as text ('32')."""
    from wsl.report import parameter_importances
    from wsl.sweep.config import Param

    rng = np.random.default_rng(2)
    width = rng.choice(["32", "row"], 30)
    frame = pd.DataFrame({"tokens.width": width, "loss.beta": rng.uniform(0, 1, 30)})
    frame["objective"] = (width == "row") + 0.01 * frame["loss.beta"]
    result = parameter_importances(frame, ["tokens.width", "loss.beta"], {"tokens.width": Param(choices=[32, "row"])})
    assert all(values["tokens.width"] > 0.8 for values in result.values())


def test_missing_sweep_names_the_path(tmp_path):
    with pytest.raises(WslError, match=re.escape(str(tmp_path / "nope" / "trials.parquet"))):
        write_report("nope", root=tmp_path)


def read_png(path: Path) -> tuple[int, int, np.ndarray]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium and kaleido write): width, height, pixels."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, chunks, header = 8, [], None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8 : pos + 8 + length])
        elif kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, width * bpp + 1)
    out = np.zeros((height, width * bpp), np.uint8)
    previous = np.zeros(width * bpp, np.uint8)
    for r in range(height):
        kind, line = raw[r, 0], raw[r, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: running sum along the row, per channel
            row = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            row = line + previous
        else:  # Average, Paeth: sequential along the row (rare in these files)
            row = bytearray(line.tobytes())
            for i in range(len(row)):
                a, b = (row[i - bpp] if i >= bpp else 0), int(previous[i])
                c = int(previous[i - bpp]) if i >= bpp else 0
                if kind == 3:
                    row[i] = (row[i] + (a + b) // 2) & 255
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            row = np.frombuffer(bytes(row), np.uint8)
        out[r] = previous = row
    return width, height, out.reshape(height, width, bpp)
