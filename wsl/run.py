"""A run directory: everything needed to resume a run or to reload what it trained, in one checkpoint.

``<out>/checkpoint.pt`` (written atomically each epoch, read with
``weights_only=True``) holds the format version, the full ``TrainConfig``,
the model and optimiser states, the loss scaler's first values, the epoch,
and what turns tokens back into weights: the architecture, the token width
and the per-layer normaliser fit on the training split. So ``load_run(dir)``
rebuilds the trained autoencoder without re-deriving anything from the zoo.

Checkpoints written before version 2 hold no normaliser or architecture:
``load_run`` refits them from the run's zoo (the fit is deterministic), and
says so if that zoo is gone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from wsl.atomic import write_file
from wsl.config import TrainConfig, from_dict
from wsl.data import Data, prepare
from wsl.device import pick_device
from wsl.errors import WslError
from wsl.losses import LossScaler
from wsl.model import Autoencoder
from wsl.tokens import Normalizer, TokenLayout, layout
from wsl.zoo.arch import Arch
from wsl.zoo.store import Zoo, load_zoo

CHECKPOINT = "checkpoint.pt"
VERSION = 2


def build_model(cfg: TrainConfig, lay: TokenLayout) -> Autoencoder:
    """The autoencoder ``cfg`` describes, sized for ``lay``'s tokens (untrained)."""
    return Autoencoder(cfg.model, lay.width, lay.num_tokens, lay.max_positions)


def save(out: Path, cfg: TrainConfig, data: Data, model, opt, scaler: LossScaler, epoch: int) -> None:
    """Checkpoint atomically: a crash mid-write leaves the previous checkpoint intact."""
    state = {
        "version": VERSION,
        "config": asdict(cfg),
        "epoch": epoch,
        "model": model.state_dict(),
        "optim": opt.state_dict(),
        "scaler": scaler.first,
        "arch": data.lay.arch.to_dict(),
        "token_width": data.lay.width,
        "normalizer": data.norm.to_dict(),
    }
    write_file(Path(out) / CHECKPOINT, lambda tmp: torch.save(state, tmp))


def resume(out: Path, cfg: TrainConfig, model, opt, scaler: LossScaler) -> int:
    """Load ``out``'s checkpoint into model, optimiser and scaler; the epoch it holds (0: none yet)."""
    path = Path(out) / CHECKPOINT
    if not path.is_file():
        return 0
    state = _read(path)
    _check_same_autoencoder(path, state["config"], cfg)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optim"])
    scaler.first.update(state["scaler"])
    return int(state["epoch"])


@dataclass
class Run:
    """A trained autoencoder reloaded from its run directory (in eval mode, on ``device``)."""

    path: Path
    cfg: TrainConfig
    epoch: int
    model: Autoencoder
    lay: TokenLayout
    norm: Normalizer
    device: str

    def data(self, zoo: Zoo | None = None) -> Data:
        """The run's zoo (or ``zoo``), tokenised and normalised exactly as the run saw it."""
        zoo = zoo if zoo is not None else load_zoo(self.cfg.zoo)
        if zoo.arch != self.lay.arch:
            raise WslError(f"zoo {zoo.path} holds {zoo.arch}, but the run {self.path} was trained on {self.lay.arch}")
        return prepare(zoo, self.lay.width, self.device, self.norm)


def load_run(path: Path | str, device: str = "auto", zoo: Zoo | None = None) -> Run:
    """The trained autoencoder of run directory ``path``, ready to encode and decode.

    ``zoo``: the zoo the run trained on, where its checkpoint may name another
    path (a version-1 checkpoint refits its normaliser from it).
    """
    path = Path(path)
    file = path / CHECKPOINT
    if not file.is_file():
        raise WslError(f"{path} is not a run directory: it has no {CHECKPOINT} (give the folder `wsl train` wrote)")
    state = _read(file)
    cfg = from_dict(TrainConfig, state["config"])
    if state.get("version", 1) >= 2:
        lay = layout(Arch.from_dict(state["arch"]), int(state["token_width"]))
        norm = Normalizer.from_dict(state["normalizer"])
    else:
        lay, norm = _refit(file, cfg, zoo)
    device = pick_device(device)
    model = build_model(cfg, lay)
    model.load_state_dict(state["model"])
    return Run(path, cfg, int(state["epoch"]), model.to(device).eval(), lay, norm, device)


def _refit(file: Path, cfg: TrainConfig, zoo: Zoo | None) -> tuple[TokenLayout, Normalizer]:
    """Layout and normaliser of a version-1 checkpoint, rebuilt from its zoo as the run built them."""
    if zoo is None and not Path(cfg.zoo).exists():
        raise WslError(
            f"{file} was written by an older wsl and holds no normaliser; it is refit from the run's zoo "
            f"{cfg.zoo}, which does not exist: restore that zoo, or pass the zoo it trained on"
        )
    data = prepare(zoo if zoo is not None else load_zoo(cfg.zoo), cfg.tokens.width, "cpu")
    return data.lay, data.norm


def _read(file: Path) -> dict:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a truncated or foreign file
        raise WslError(f"cannot read checkpoint {file}: {e}") from None


def _check_same_autoencoder(path: Path, saved: dict, cfg: TrainConfig) -> None:
    """A checkpoint resumes only into the autoencoder it was trained as (defaults change: say which key)."""
    for section in ("tokens", "model"):
        for key, value in saved[section].items():
            now = getattr(getattr(cfg, section), key)
            if now != value:
                raise WslError(
                    f"{path} was trained with {section}.{key}={value!r}, not {now!r}: resume with the run's "
                    f"settings ({section}.{key}={value!r}), or start a new run under another name"
                )
