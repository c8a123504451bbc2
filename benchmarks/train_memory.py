"""Working memory of one ``wsl train`` run (issue 30): its peak RSS minus the import baseline, phase by phase.

    python benchmarks/train_memory.py                                  # ~2 min on 2 cores (2 epochs, then the end)
    python benchmarks/train_memory.py --code /tmp/before --code .      # two checkouts' wsl, one after the other
    python benchmarks/train_memory.py --zoo ../main/zoos/digits-cnn --threads 1 --set eval.baselines=false

The run is ``wsl train`` itself (``wsl.cli.main``, the default config ``sweeps/train.yaml`` with
``optim.epochs`` from ``--epochs``) in a child process, this file run again (``--child``), so that its peak
RSS is one run's alone (``trial_scale.peak_rss_gb``); ``--code DIR`` runs the wsl package of another checkout
(e.g. ``git archive <commit> | tar -x -C DIR``) on this checkout's config. The import baseline is the peak
RSS after importing what ``wsl train`` imports. The child wraps ``wsl.train``'s parts (``load_zoo``,
``prepare``, ``behavior``, ``originals``, ``copy_baselines``, each ``train_epoch``, ``evaluate_epoch`` and
``run.save``, ``evaluate_final``, ``generation``); at each part's start and end it reads the peak RSS since
the last reading and resets it (``/proc/self/clear_refs``), so the time between two parts (the model and
its optimiser, whose first use imports ``torch._dynamo``) is a phase of its own, named after the part it
precedes. Beside each phase: glibc's heap at its end (``mallinfo2``), in use and free but held (freed
memory that the allocator keeps and RSS still counts), and the shared libraries' pages read so far
(``RssFile``: code, not data). Two more figures explain the rest: the tensors autograd saves in the first
training step (what a step needs alive at once), and what ``malloc_trim(0)`` hands back at the end.

Expected (2026-12-05, ``--threads 1``, 2 epochs, a sweep busy on both cores; both runs ~4 min): import
baseline 0.39 GB; at commit 1fab97b peak 1.16 GB (working 0.77 GB, its peak in ``evaluate_final``), with issue
30's changes 1.12 GB (working 0.73 GB, peak in the second ``train_epoch``; it varies by ~0.1 GB run to run with
the heap's fragmentation). At the peak glibc holds ~0.5 GB of the heap free (``malloc_trim(0)`` hands back as
much at the end); a step's autograd tensors are 155 MB; the heap in use ~180 MB.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from trial_scale import peak_rss_gb, status_mb

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("prepare", "behavior", "originals", "copy_baselines", "train_epoch", "evaluate_epoch")
PARTS += ("evaluate_final", "generation")  # wsl.train's names; run.save and load_zoo are patched where they live
MB = 2**20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
        + ("keepcost",)
    ]


def heap() -> dict[str, float]:
    """glibc's main heap in MB: ``used`` (allocated), ``free`` (freed but held: RSS counts the pages it touched),
    ``mmapped`` (large blocks mapped alone, handed back on free); empty where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError):
        return {}
    info = libc.mallinfo2()
    return {"used": info.uordblks / MB, "free": info.fordblks / MB, "mmapped": info.hblkhd / MB}


class Phases:
    """Peak RSS between successive readings; each reading resets the peak to the current RSS."""

    def __init__(self):
        self.rows: list[dict] = []
        self.calls: dict[str, int] = {}
        self.start = status_mb("VmRSS")
        self._reset()

    def read(self, name: str) -> None:
        now = status_mb("VmRSS")
        self.rows.append({"phase": name, "start MB": self.start, "peak MB": status_mb("VmHWM"), "end MB": now})
        self.rows[-1] |= {f"heap {k} MB": v for k, v in heap().items()} | {"code MB": status_mb("RssFile")}
        self.start = now
        self._reset()

    def wrap(self, owner, name: str):
        """``owner.name`` with a reading before it (the time since the last part) and after it."""
        fn = getattr(owner, name)

        def wrapper(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            label = name if self.calls[name] == 1 else f"{name} {self.calls[name]}"
            self.read(f"(before {label})")
            out = fn(*args, **kwargs)
            self.read(label)
            return out

        setattr(owner, name, wrapper)

    @staticmethod
    def _reset() -> None:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux 4.0+)


def saved_bytes(step):
    """``step`` (``wsl.train.train_step``) recording, on its first call, the bytes of the tensors autograd saves
    for the backward pass (each storage once): what one training step holds alive at its peak."""
    import torch

    seen: dict[int, int] = {}

    def wrapper(*args, **kwargs):
        if seen:
            return step(*args, **kwargs)

        def pack(t):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            return step(*args, **kwargs)

    return wrapper, seen


def child(zoo: str, epochs: int, threads: int | None, overrides: list[str]) -> dict:
    """One ``wsl train`` of ``zoo``, its phases read: what the parent reads from the last line of stdout."""
    import torch

    from wsl import cli, compose, config, results, run, table, train  # what `wsl train` imports
    from wsl.zoo import store

    del compose, config, results, table
    baseline = peak_rss_gb() * 1024
    if threads:
        torch.set_num_threads(threads)
    phases = Phases()
    for name in PARTS:
        phases.wrap(train, name)
    phases.wrap(run, "save")
    phases.wrap(store, "load_zoo")
    train.train_step, saved = saved_bytes(train.train_step)
    with tempfile.TemporaryDirectory() as out:
        argv = ["train", f"zoo={zoo}", f"out={out}/run", f"optim.epochs={epochs}", *overrides]
        with open(os.devnull, "w") as quiet:  # the run's own table: the parent reads one JSON line
            stdout, sys.stdout = sys.stdout, quiet
            try:
                code = cli.main(argv)
            finally:
                sys.stdout = stdout
    phases.read("(after the run)")
    before_trim = status_mb("VmRSS")
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return {
        "code": code,
        "baseline": baseline,
        "phases": phases.rows,
        "saved": sum(saved.values()) / MB,
        "trimmed": before_trim - status_mb("VmRSS"),
    }


def measure(code: Path, zoo: str, epochs: int, threads: int | None, overrides: list[str]) -> dict:
    """Run the child on the wsl package under ``code``; its readings."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, __file__, "--child", zoo, "--epochs", str(epochs)]
    command += [f"--threads={threads}"] if threads else []
    command += [f"--set={o}" for o in overrides]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the child run of {code} failed:\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if got["code"] != 0:
        raise SystemExit(f"`wsl train` of {code} exited {got['code']}:\n{done.stderr[-3000:]}")
    return got


def report(code: Path, got: dict) -> dict:
    """Print one run's phases; its summary row."""
    phases = pd.DataFrame(got["phases"])
    quiet = phases["phase"].str.startswith("(") & (phases["peak MB"] - phases["start MB"] < 5)
    phases = phases[~quiet | (phases.index == len(phases) - 1)].reset_index(drop=True)  # gaps that held nothing
    phases.insert(3, "peak - baseline MB", phases["peak MB"] - got["baseline"])
    peak = float(phases["peak MB"].max())
    at_peak = phases.loc[phases["peak MB"].idxmax()]
    print(f"\n{code}: import baseline {got['baseline']:.0f} MB, peak {peak:.0f} MB ({at_peak['phase']})")
    print(markdown(phases))
    print(
        f"first training step: autograd saved {got['saved']:.0f} MB; "
        f"at the end malloc_trim(0) handed back {got['trimmed']:.0f} MB that glibc held free"
    )
    return {
        "code": str(code),
        "import baseline MB": got["baseline"],
        "peak MB": peak,
        "working MB": peak - got["baseline"],
        "heap free at peak MB": at_peak.get("heap free MB", float("nan")),
        "code pages MB": at_peak["code MB"] - phases["code MB"].iloc[0],
        "step saved MB": got["saved"],
    }


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, MB to the unit."""
    cells = [[v if isinstance(v, str) else f"{v:.0f}" for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", type=Path, action="append", help="a checkout whose wsl to run (default: this one)")
    parser.add_argument("--zoo", default="zoos/digits-cnn", help="the zoo (relative to this checkout)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the run (its end follows)")
    parser.add_argument("--threads", type=int, help="torch threads of the run (default: torch's, as `wsl train`)")
    parser.add_argument("--set", action="append", default=[], help="a training config override")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.epochs, args.threads, args.set)))
        return
    zoo = str((ROOT / args.zoo).resolve())
    rows = [
        report(code, measure(code.resolve(), zoo, args.epochs, args.threads, args.set)) for code in args.code or [ROOT]
    ]
    print("\n" + markdown(pd.DataFrame(rows)))
    if len(rows) > 1:
        print(f"\nworking memory, last against first: {rows[-1]['working MB'] / rows[0]['working MB']:.2f}x")


if __name__ == "__main__":
    main()
