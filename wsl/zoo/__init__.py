"""Model zoos: architectures, the batched forward pass, and zoos on disk."""

from wsl.zoo.arch import Arch, Conv, as_module, cnn, forward, init_params, mlp
from wsl.zoo.splits import SPLITS, assign_splits
from wsl.zoo.store import Zoo, load_zoo, save_zoo, summary

__all__ = [
    "SPLITS",
    "Arch",
    "Conv",
    "Zoo",
    "as_module",
    "assign_splits",
    "cnn",
    "forward",
    "init_params",
    "load_zoo",
    "mlp",
    "save_zoo",
    "summary",
]
