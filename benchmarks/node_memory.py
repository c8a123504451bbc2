"""What a second concurrent trial adds to a node's memory: is the zoo held once per node?

    python benchmarks/node_memory.py            # CNN-l's shape, 100 rows; 4 sweeps of 1 epoch: ~8 min on 2 cores

A sweep hands the zoo and its task data to its trials through Ray's object store. Held once per node, a
second trial on the node adds its own working set and nothing of the data; unpickled into each trial, it
adds a copy of the data as well. This runs a real ``wsl sweep`` (1 epoch a trial, ``resources.cpus=1``)
with 1 and then 2 concurrent trials, on a random zoo in CNN-l's shape (``trial_scale.py``) twice: with
CIFAR-10-sized task data (60,000 images, 737 MB) and with a small task (1,500 images). It samples every
process of the sweep (the driver, Ray's own processes, the trial workers) each half second and reports the
peak of their summed PSS (``/proc/PID/smaps_rollup``: a page shared by k processes counts 1/k in each, so
the object store's pages count once, where RSS counts them in every worker), each trial worker's peak PSS
and private bytes (USS), and the object store's resident bytes.

The second trial's increment (2 concurrent minus 1) is its working set plus whatever of the data it copies.
The working set does not depend on the task's size, so the difference between the two zoos' increments,
over the difference between their data bytes, is the share of the data a second trial copies (target:
at most 25%; about 100% if every trial unpickles its own).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
from trial_scale import SHAPES, markdown, random_zoo

from wsl.zoo.store import save_zoo

ROWS = 100
TASKS = {"cifar-sized": (50_000, 10_000), "small": (1_000, 500)}
SWEEP = [
    "scheduler.max_t=1",
    "scheduler.grace_period=1",
    "resources.cpus=1",
    "train.eval.inputs=1000",  # the default since 2026-12-06; explicit, as when RESULTS.md was measured
    "train.optim.batch_size=32",
]


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    parents = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:  # ended meanwhile
            continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def memory(pid: int) -> dict[str, int]:
    """A process's PSS, USS and the resident bytes of its object-store mapping, in bytes."""
    proc = Path(f"/proc/{pid}")
    rollup = dict(line.split(":", 1) for line in (proc / "smaps_rollup").read_text().splitlines()[1:])
    kb = {k: int(v.split()[0]) for k, v in rollup.items()}
    plasma, inside = 0, False
    for line in (proc / "smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0] and not line.endswith(":"):
            inside = "plasma" in line
        elif inside and line.startswith("Rss:"):
            plasma += int(line.split()[1])
    return {
        "pss": kb["Pss"] * 1024,
        "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) * 1024,
        "plasma": plasma * 1024,
        "trial": (proc / "cmdline").read_bytes().startswith(b"ray::ImplicitFunc"),
    }


def watch(root: int, stop: threading.Event, peaks: dict) -> None:
    """Every half second until ``stop``: the summed PSS of ``root``'s tree, each trial worker's figures."""
    while not stop.is_set():
        total = 0
        for pid in descendants(root):
            try:
                m = memory(pid)
            except (OSError, ValueError, KeyError):  # ended meanwhile
                continue
            total += m["pss"]
            peaks["plasma"] = max(peaks.get("plasma", 0), m["plasma"])
            if m["trial"]:
                worker = peaks.setdefault(pid, {"pss": 0, "uss": 0})
                worker["pss"], worker["uss"] = max(worker["pss"], m["pss"]), max(worker["uss"], m["uss"])
        peaks["node"] = max(peaks.get("node", 0), total)
        stop.wait(0.5)


def sweep(zoo: Path, trials: int, results: Path) -> dict:
    """A real sweep of ``trials`` trials, all at once, on ``zoo``; its memory peaks in GB."""
    name = f"mem-{zoo.name}-{trials}"
    command = [Path(sys.executable).parent / "wsl", "sweep", f"zoo={zoo}", f"name={name}", *SWEEP]
    command += [f"search.num_samples={trials}", f"search.max_concurrent={trials}", f"search.startup={trials}"]
    env = {**os.environ, "WSL_RESULTS": str(results), "RAY_ADDRESS": ""}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop, peaks = threading.Event(), {}
    watcher = threading.Thread(target=watch, args=(process.pid, stop, peaks))
    watcher.start()
    _, err = process.communicate()
    stop.set()
    watcher.join()
    if process.returncode != 0:
        raise SystemExit(f"the sweep {name} failed:\n{err[-3000:]}")
    workers = [v for k, v in peaks.items() if isinstance(k, int)]
    gb = 2**30
    return {
        "node PSS GB": peaks["node"] / gb,
        "trial workers": len(workers),
        "worker PSS GB": max(w["pss"] for w in workers) / gb,
        "worker USS GB": max(w["uss"] for w in workers) / gb,
        "object store GB": peaks["plasma"] / gb,
    }


def main() -> None:
    rows, data_gb = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for task, (train, test) in TASKS.items():
            shape = dataclasses.replace(SHAPES["cnn-l"], train_images=train, test_images=test)
            zoo = random_zoo(shape, ROWS)
            data_gb[task] = (
                sum(t.nbytes for t in zoo.weights.values())
                + sum(t.nbytes for t in (zoo.task_data.x_train, zoo.task_data.x_test))
            ) / 2**30
            path = save_zoo(Path(tmp) / task, zoo)
            del zoo
            for trials in (1, 2):
                started = time.perf_counter()
                got = sweep(path, trials, Path(tmp) / "results")
                rows.append({"task": task, "zoo+task GB": data_gb[task], "concurrent": trials, **got})
                rows[-1]["seconds"] = time.perf_counter() - started
                print(markdown(pd.DataFrame(rows[-1:])), flush=True)
    table = pd.DataFrame(rows)
    print("\n" + markdown(table))
    node = table.set_index(["task", "concurrent"])["node PSS GB"]
    added = {task: node[task, 2] - node[task, 1] for task in TASKS}
    big, small = TASKS
    share = (added[big] - added[small]) / (data_gb[big] - data_gb[small])
    verdict = "met" if share <= 0.25 else "not met"
    print(
        f"\na second trial adds {added[big]:.2f} GB on the {big} zoo and {added[small]:.2f} GB on the {small} one: "
        f"{share:.0%} of the {data_gb[big] - data_gb[small]:.2f} GB more data (target <= 25%: {verdict})"
    )


if __name__ == "__main__":
    main()
