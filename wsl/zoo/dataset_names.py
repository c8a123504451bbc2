"""The standard datasets public zoos were trained on, by name: how their many spellings map to one, and when a
zoo's claim and the data given for it disagree.

A zoo names its dataset (``--task``, the Small CNN Zoo's ``config.dataset``:
``FashionMNIST``, ``CIFAR10-GS``, ``svhn_cropped``...); data read from disk
(``wsl.zoo.datasets``) is named by what its files tell. ``check_dataset``
refuses a mismatch before anything is written.
"""

from __future__ import annotations

import re

from wsl.errors import WslError

DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn")
EITHER_MNIST = "mnist|fashion_mnist"  # the name of IDX data whose folders do not tell which
UNKNOWN = "unknown"  # the name of .npz data
CLASSES = 10  # of every dataset in DATASETS
SPELLINGS = {  # a dataset's name, lower case without punctuation and a greyscale suffix -> its name in DATASETS
    "mnist": "mnist",
    "fashionmnist": "fashion_mnist",
    "fashion": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "cifar10": "cifar10",
    "svhn": "svhn",
    "svhncropped": "svhn",
}


def dataset_name(spelling: str) -> str | None:
    """The name in ``DATASETS`` that ``spelling`` means ('FashionMNIST', 'CIFAR10-GS', 'svhn_cropped'), else None."""
    key = re.sub(r"[^a-z0-9]", "", spelling.lower())
    return SPELLINGS.get(re.sub(r"(gs|grayscale|greyscale)$", "", key))


def check_dataset(name: str, claimed: str, source) -> None:
    """Refuse, naming ``source``, data of dataset ``name`` (a ``read_dataset`` task's) when a zoo names another.

    ``claimed`` is what the zoo names (``--task``, the Small CNN Zoo's
    ``config.dataset``). Nothing is refused when either side does not tell:
    a claim that is no standard dataset, ``.npz`` data; ``EITHER_MNIST`` passes
    for MNIST and for Fashion-MNIST (re-running the originals tells them apart).
    """
    want = dataset_name(claimed)
    could_be = [n for n in name.split("|") if n in DATASETS]
    if want is None or not could_be or want in could_be:
        return
    raise WslError(f"{source} holds {name} data, but the zoo names {claimed!r} ({want}); pass the {want} files")
