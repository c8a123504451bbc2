"""cluster/ is read by machines we cannot run here: check it against what reads it.

No Ray starts and no cloud is called. The launcher configs are validated with
the schema `ray up` uses, the RayJob manifest is checked for what the sweep
needs (GPUs, one shared volume), and every `wsl` command the files show, in
README code blocks, YAML headers or the RayJob entrypoint, goes through the
real `wsl` argument parser and, for `zoo make` and `sweep`, the real Hydra
composition, so a renamed flag or config key breaks these tests, not a
cluster run.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import ray.autoscaler
import yaml
from jsonschema import validate
from packaging.specifiers import SpecifierSet

from wsl.cli import _parser
from wsl.compose import load_config
from wsl.sweep.config import SweepConfig
from wsl.zoo.make import ZooConfig

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
PYPROJECT = CLUSTER.parent / "pyproject.toml"
LAUNCHERS = ("aws.yaml", "gcp.yaml")
CONTROL = {"&&", "||", ";", "|", "&"}  # shell operators that end a command
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")  # VAR=value before a command
COMPOSED = {("zoo", "make"): ("zoo", ZooConfig), ("sweep",): ("sweep", SweepConfig)}


def launcher(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def rayjob_documents() -> list[dict]:
    return list(yaml.safe_load_all((CLUSTER / "rayjob.yaml").read_text()))


def rayjob() -> dict:
    (job,) = [d for d in rayjob_documents() if d["kind"] == "RayJob"]
    return job


def pods(job: dict) -> list[dict]:
    """The pod specs of the head group and of every worker group."""
    spec = job["spec"]["rayClusterSpec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [group["template"]["spec"] for group in groups]


def join_continuations(lines: list[str]) -> list[str]:
    """Shell lines as the shell reads them: a trailing backslash continues onto the next line."""
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            joined.append(pending + line)
            pending = ""
    return joined


def readme_lines() -> list[str]:
    """The lines of the ```bash blocks of cluster/README.md."""
    blocks = re.findall(r"```bash\n(.*?)```", (CLUSTER / "README.md").read_text(), flags=re.S)
    return join_continuations([line for block in blocks for line in block.splitlines()])


def header_lines(name: str) -> list[str]:
    """The commands a YAML file's header comment shows, indented as ``#   command``."""
    lines = (CLUSTER / name).read_text().splitlines()
    return join_continuations([line[1:] for line in lines if line.startswith("#   ")])


def wsl_commands(line: str) -> list[list[str]]:
    """The arguments of each ``wsl`` a shell line runs.

    ``wsl`` counts where a command starts (after an operator, ``--`` or
    ``VAR=value``), and inside a quoted string that is itself a command line
    (``bash -c "..."``, ``ray exec CONFIG "..."``).
    """
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = []
    current: list[str] | None = None
    at_start = True
    for word in lexer:
        if word in CONTROL:
            current, at_start = None, True
        elif current is not None:
            current.append(word)
        elif any(c.isspace() for c in word):
            commands += wsl_commands(word)
            at_start = False
        elif word == "--" or (at_start and ASSIGNMENT.match(word)):
            at_start = True
        elif at_start and word == "wsl":
            current = []
            commands.append(current)
        else:
            at_start = False
    return commands


def shown_commands() -> list[tuple[str, list[str]]]:
    """Every ``wsl`` command cluster/ shows, with the file it is in."""
    sources = [("README.md", readme_lines()), ("rayjob.yaml", [rayjob()["spec"]["entrypoint"]])]
    sources += [(name, header_lines(name)) for name in (*LAUNCHERS, "rayjob.yaml")]
    return [(source, args) for source, lines in sources for line in lines for args in wsl_commands(line)]


def config_of(args: list[str]) -> tuple[str, type] | None:
    """The config file and schema ``wsl <args>`` composes, if any (``--resume`` reuses the sweep's saved one)."""
    if "--resume" in args:
        return None
    return next((value for words, value in COMPOSED.items() if tuple(args[: len(words)]) == words), None)


SHOWN = shown_commands()
COMPOSING = [command for command in SHOWN if config_of(command[1])]
SWEEPS = [command for command in COMPOSING if command[1][0] == "sweep"]


def command_id(command: tuple[str, list[str]]) -> str:
    source, args = command
    return f"{source}: wsl {' '.join(args)}"[:100]


def composed(args: list[str]):
    """The typed config ``wsl <args>`` would run with, composed as the command line does."""
    name, schema = config_of(args)
    return load_config(name, _parser().parse_args(args).overrides, schema)


def test_the_files_show_wsl_commands():
    """The parsing below found the commands, so the checks on them check something."""
    assert {source for source, _ in SHOWN} >= {"README.md", "rayjob.yaml", *LAUNCHERS}
    assert SWEEPS


@pytest.mark.parametrize("command", SHOWN, ids=command_id)
def test_a_shown_wsl_command_parses(command):
    """Flags and subcommands are the ones wsl/cli.py defines."""
    try:
        _parser().parse_args(command[1])
    except SystemExit:
        pytest.fail(f"{command_id(command)} is not a valid wsl command")


@pytest.mark.parametrize("command", COMPOSING, ids=command_id)
def test_a_shown_zoo_or_sweep_command_composes_its_config(command):
    """Overrides name real config keys with valid values (a WslError says which one is wrong)."""
    composed(command[1])


@pytest.mark.parametrize("command", SWEEPS, ids=command_id)
def test_a_cluster_sweep_writes_checkpoints_to_shared_storage(command):
    """Trials on workers checkpoint to ``storage``; the default, the driver's sweep directory, is on the head only."""
    storage = composed(command[1]).storage
    assert storage and (storage.startswith(("s3://", "gs://")) or storage.startswith("/"))


@pytest.mark.parametrize("command", SWEEPS, ids=command_id)
def test_a_cluster_sweep_asks_for_gpus_itself(command):
    """Left empty, ``resources.gpus`` is decided at start, when a cluster scaled to zero has no GPU to see."""
    assert composed(command[1]).resources.gpus


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_config_passes_the_schema_ray_up_checks(name):
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    validate(launcher(name), schema)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_head_node_type_is_one_of_its_node_types(name):
    config = launcher(name)
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_has_a_gpu_worker_type_that_scales_from_zero(name):
    """Trials run on GPU workers that cost nothing while no sweep asks for them."""
    config = launcher(name)
    workers = [t for key, t in config["available_node_types"].items() if key != config["head_node_type"]]
    assert any(t["resources"].get("GPU", 0) >= 1 and t.get("min_workers", 0) == 0 for t in workers)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_installs_the_checkout_it_uploads(name):
    """``file_mounts`` copies the repository to the nodes; a setup command must pip-install that copy."""
    config = launcher(name)
    (target,) = [remote for remote, local in config["file_mounts"].items() if local == "."]
    installs = [c.split() for c in config["setup_commands"] if "pip install" in c]
    assert any(target in words for words in installs)


def test_every_node_and_image_runs_one_ray_version_the_project_allows():
    """Ray clients and clusters must run one version: launchers and RayJob pin the same, in pyproject's range."""
    pins = [
        pin
        for name in LAUNCHERS
        for pin in re.findall(r"ray\[default\]==([\w.]+)", " ".join(launcher(name)["setup_commands"]))
    ]
    pins.append(rayjob()["spec"]["rayClusterSpec"]["rayVersion"])
    allowed = SpecifierSet(re.search(r'"ray\[tune\]([^"]+)"', PYPROJECT.read_text()).group(1))
    assert len(pins) == len(LAUNCHERS) + 1 and len(set(pins)) == 1 and pins[0] in allowed, pins


def test_rayjob_is_a_kuberay_v1_rayjob():
    job = rayjob()
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_rayjob_workers_request_a_gpu():
    for group in rayjob()["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        (container,) = group["template"]["spec"]["containers"]
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1, group["groupName"]


def test_rayjob_pods_share_one_readwritemany_volume():
    """Head and workers run on different nodes and all write to the claim, so it must be ReadWriteMany."""
    claims = {v["persistentVolumeClaim"]["claimName"] for pod in pods(rayjob()) for v in pod["volumes"]}
    (claim,) = claims
    (pvc,) = [d for d in rayjob_documents() if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["metadata"]["name"] == claim
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]


def test_rayjob_keeps_storage_and_results_on_the_shared_volume():
    """Tune storage is read by every pod and the results tables must outlive the cluster: both on the volume."""
    job = rayjob()
    mounts = [{m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]} for pod in pods(job)]
    shared = set.intersection(*mounts)
    (head, *_) = pods(job)
    env = {e["name"]: e["value"] for c in head["containers"] for e in c.get("env", [])}
    storages = [composed(args).storage for args in wsl_commands(job["spec"]["entrypoint"]) if args[0] == "sweep"]
    for path in [env["WSL_RESULTS"], *storages]:
        assert any(path.startswith(mount.rstrip("/") + "/") for mount in shared), path
