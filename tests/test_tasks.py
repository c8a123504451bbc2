"""Tasks ship offline, split the same way every time, are standardised on train only; a zoo's own data wins."""

import pytest
import torch
from test_store import make_zoo, tiny_task, zoo_with_task

from wsl.data import prepare, task_of
from wsl.errors import WslError
from wsl.zoo.store import load_zoo, save_zoo
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


def test_task_of_prefers_the_zoos_own_data_then_the_shipped_task():
    own = zoo_with_task()
    assert task_of(own) is own.task_data
    own.task = "digits"
    assert task_of(own) is own.task_data
    assert task_of(make_zoo(task="digits")) is load_task("digits")


def test_a_zoo_with_neither_own_data_nor_a_shipped_task_is_one_clear_error():
    with pytest.raises(WslError, match="zoo tiny has no task data and its task 'mnist' does not ship.*import it with"):
        task_of(make_zoo(task="mnist"))


def test_prepare_uses_the_zoos_own_data(tmp_path):
    zoo = load_zoo(save_zoo(tmp_path / "zoo", zoo_with_task()))
    data = prepare(zoo, 8, "cpu")
    assert data.task is zoo.task_data and torch.equal(data.task.x_train, tiny_task().x_train)
    with pytest.raises(WslError, match="has no task data"):
        prepare(make_zoo(task="mnist"), 8, "cpu")
