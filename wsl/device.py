"""Which torch device to run on: CUDA when there is one, else the CPU."""

import torch

from wsl.errors import WslError


def pick_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` if available, else ``cpu``; an explicit name is checked, not trusted."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WslError(f"device={name!r} asked for, but torch sees no CUDA GPU; use device=auto or device=cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise WslError(f"device={name!r} is unknown; use auto, cpu, cuda or cuda:N")
    return name
