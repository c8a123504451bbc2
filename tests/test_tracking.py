"""tracking=wandb end to end (offline, no key), and a tracker whose package is missing. MLflow's runs are read
back in tests/test_sweep.py, from the sweep every test there shares and from the killed-and-resumed one."""

import sys
from pathlib import Path

import pandas as pd
import pytest
from test_sweep import env, tiny, wsl  # noqa: F401 (env: a fixture)
from wandb.proto.wandb_internal_pb2 import Record

from wsl.errors import WslError
from wsl.sweep import tracking
from wsl.sweep.config import SweepConfig, TrackingConfig

BLOCK, HEADER = 32768, 7  # the LevelDB log format of a .wandb file: 32 KiB blocks; a 7-byte file header
FULL, LAST = 1, 4  # record kinds that end a record (FIRST and MIDDLE continue it into the next block)


def wandb_history(path: Path) -> list[dict]:
    """The history rows (what ``wandb.log`` got) of one offline run file, in order.

    wandb >= 0.2x has no Python reader of its own files (its Go core writes them), so this reads the log
    format: each chunk a 7-byte header (CRC32, little-endian length, kind) and its bytes of a ``Record``.
    """
    data, pos, chunk, rows = path.read_bytes(), HEADER, b"", []
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = Record.FromString(chunk)
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
            chunk = b""
    return rows


def test_a_wandb_sweep_without_a_key_keeps_one_offline_run_per_trial_with_every_epoch(
    env,  # noqa: F811
    small_zoo_path,
    tmp_path,
):
    env = {k: v for k, v in env.items() if not k.startswith("WANDB_")}
    result = wsl(env, "sweep", *tiny(small_zoo_path, "w1", "search.num_samples=2", "tracking=wandb"))
    assert result.returncode == 0, result.stderr[-3000:]
    directory = Path(env["WSL_RESULTS"]) / "w1"
    epochs = pd.read_parquet(directory / "epochs.parquet")
    runs = {path.stem.removeprefix("run-"): path for path in (directory / "wandb").glob("offline-run-*/run-*.wandb")}
    assert sorted(runs) == sorted(epochs["trial_id"].unique())
    for trial_id, path in runs.items():
        mine = epochs[epochs["trial_id"] == trial_id].sort_values("epoch")
        history = wandb_history(path)
        assert [int(row["epoch"]) for row in history] == mine["epoch"].tolist()
        assert [float(row["objective"]) for row in history] == mine["objective"].tolist()


@pytest.mark.parametrize("kind", ["mlflow", "wandb"])
def test_a_tracker_whose_package_is_missing_is_refused_before_the_sweep_starts(kind, monkeypatch):
    monkeypatch.setitem(sys.modules, kind, None)  # how Python marks a module as not importable
    with pytest.raises(WslError, match=rf"tracking={kind} needs the {kind} package: pip install -e '.\[tracking\]'"):
        tracking.prepare(SweepConfig(tracking=TrackingConfig(kind=kind)))
