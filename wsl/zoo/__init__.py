"""Model zoos: architectures, the batched forward pass, and zoos on disk."""

from wsl.zoo.arch import Arch, Conv, as_module, cnn, forward, init_params, mlp
from wsl.zoo.store import Zoo, assign_splits, load_zoo, save_zoo, summary

__all__ = [
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
