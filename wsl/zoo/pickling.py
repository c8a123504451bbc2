"""How a zoo and its task data are pickled: their tensors as numpy arrays.

A sweep hands the zoo to its trials through Ray's object store. Ray stores a
numpy array out of band (pickle protocol 5) and gives every worker on the node a
view of that one copy in shared memory; a torch tensor it would pickle into
bytes, and every trial would unpickle a private copy of the weights and of the
task's images (740 MB on a CIFAR-10-sized task). So ``Zoo`` and ``Task`` pickle
their tensors as arrays, and unpickling views them as tensors again
(``torch.from_numpy``: no copy). In a Ray worker numpy marks those arrays
read-only, which torch does not enforce, and the memory is shared: a write
would reach every trial on the node. Nothing in wsl writes into a zoo or a
task; every transform makes new tensors.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor


def arrays(tensors: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """Each tensor as a numpy array of the same memory (a CPU copy first if it lives on a GPU)."""
    return {name: t.detach().cpu().numpy() for name, t in tensors.items()}


def tensors(arrays: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """Each array viewed as a tensor, without a copy, read-only views included."""
    with warnings.catch_warnings():  # torch warns that it cannot mark a view of read-only memory read-only
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return {name: torch.from_numpy(a) for name, a in arrays.items()}
