"""Hydra at the edge: compose a config from ``sweeps/`` plus overrides into a typed dataclass.

The only module that reads Hydra or OmegaConf, and only the command line
(``wsl.cli``) imports it. Everything below it receives the plain
dataclass, already checked (key names and types by OmegaConf against the
dataclass, value ranges by the dataclass's ``__post_init__``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from wsl.errors import WslError

T = TypeVar("T")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "sweeps"


def config_dir() -> Path:
    """``$WSL_CONFIG_DIR`` if set, else the repository's ``sweeps/``."""
    return Path(os.environ.get("WSL_CONFIG_DIR", CONFIG_DIR)).resolve()


def load_config(name: str, overrides: list[str], schema: type[T]) -> T:
    """Compose ``<config_dir>/<name>.yaml`` with ``overrides`` and validate it as ``schema``.

    A name in a folder (``promoted/default-abc``) is composed at the top level,
    as the folder's option placed in the global package: Hydra would otherwise
    nest a primary config under its folder's name (``promoted.seed``).
    """
    directory = config_dir()
    if not (directory / f"{name}.yaml").is_file():
        raise WslError(f"config file {directory / name}.yaml not found; set WSL_CONFIG_DIR to your sweeps/ folder")
    group, _, option = name.rpartition("/")
    primary, overrides = (None, [f"+{group}@_global_={option}", *overrides]) if group else (name, overrides)
    try:
        with initialize_config_dir(str(directory), version_base=None):
            cfg = compose(config_name=primary, overrides=overrides)
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        return OmegaConf.to_object(merged)
    except (HydraException, OmegaConfBaseException) as e:
        raise WslError(f"config {name}.yaml with overrides {overrides}: {_first_line(e)}") from None


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def load_yaml(path: Path, schema: type[T], upgrade: Callable[[dict], dict] | None = None) -> T:
    """A config saved earlier (e.g. a sweep's ``sweep.yaml``), brought up to date by ``upgrade``, as ``schema``."""
    if not Path(path).is_file():
        raise WslError(f"config file {path} not found")
    try:
        tree = OmegaConf.to_container(OmegaConf.load(path))
        tree = upgrade(tree) if upgrade is not None and isinstance(tree, dict) else tree
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), tree))
    except (OmegaConfBaseException, ValueError) as e:
        raise WslError(f"config file {path}: {_first_line(e)}") from None
