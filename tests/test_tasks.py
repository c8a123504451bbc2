"""Tasks ship offline, split the same way every time, and are standardised on train only."""

import pytest
import torch

from wsl.errors import WslError
from wsl.zoo.tasks import TASKS, _cached, load_task


@pytest.mark.parametrize("name", TASKS)
def test_task_has_disjoint_train_and_test_with_all_classes(name):
    task = load_task(name)
    assert task.num_classes == 10
    assert set(task.y_train.tolist()) == set(range(10)) == set(task.y_test.tolist())
    assert len(task.x_train) > len(task.x_test) > 100
    assert task.x_train.dtype == torch.float32


@pytest.mark.parametrize("name", TASKS)
def test_split_is_reproducible(name):
    first = load_task(name)
    _cached.cache_clear()
    again = load_task(name)
    assert torch.equal(first.x_test, again.x_test) and torch.equal(first.y_train, again.y_train)


def test_training_inputs_are_standardised():
    x = load_task("digits").x_train
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3


def test_unknown_task_lists_known_ones():
    with pytest.raises(WslError, match="digits, shapes"):
        load_task("mnist")
