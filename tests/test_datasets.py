"""Standard datasets read from the files users have on disk, and `wsl zoo import --data` with them."""

import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import test_importer
import torch
from scipy.io import savemat
from sklearn.datasets import load_digits
from test_importer import digits_dataset

from wsl.errors import WslError
from wsl.zoo import load_zoo
from wsl.zoo.dataset_names import EITHER_MNIST, UNKNOWN, check_dataset, dataset_name
from wsl.zoo.datasets import read_dataset
from wsl.zoo.importer import import_public_zoo

trained_public = test_importer.trained_public  # 4 digits CNNs trained for 4 epochs, and their dataset.pt
IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def digits28() -> tuple[np.ndarray, np.ndarray]:
    """80 real handwritten digits as MNIST stores them: uint8 [80, 28, 28] (8x8 upscaled 3x, padded 2), labels."""
    data = load_digits()
    pixels = np.round(data.images[:80] * 255 / 16).astype(np.uint8)
    big = np.pad(np.kron(pixels, np.ones((3, 3), np.uint8)), ((0, 0), (2, 2), (2, 2)))
    return big, data.target[:80].astype(np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 00 00 08 <ndim>, big-endian uint32 sizes, the bytes."""
    header = bytes((0, 0, 8, array.ndim)) + np.array(array.shape, ">u4").tobytes()
    return header + array.tobytes()


def write(file: Path, content: bytes) -> Path:
    """``content`` at ``file``, gzipped when the name ends in .gz."""
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(gzip.compress(content) if file.suffix == ".gz" else content)
    return file


def write_mnist(folder: Path, gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The 4 IDX files of ``digits28`` (60 train, 20 test) in ``folder``; returns images and labels."""
    x, y = digits28()
    arrays = (x[:60], y[:60], x[60:], y[60:])
    for name, array in zip(IDX, arrays, strict=True):
        write(folder / (name + ".gz" if gz else name), idx_bytes(array))
    return x, y


def write_cifar(folder: Path, per_batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """6 CIFAR-10 binary batches of random records; returns all records [6 * per_batch, 3073] (test last)."""
    records = np.random.default_rng(0).integers(0, 256, (6 * per_batch, 3073), dtype=np.uint8)
    records[:, 0] %= 10
    for i, name in enumerate(CIFAR):
        write(folder / name, records[i * per_batch : (i + 1) * per_batch].tobytes())
    return records


def write_svhn(folder: Path, labels=(10, 1, 5, 10, 9)) -> np.ndarray:
    """train_32x32.mat and test_32x32.mat with X [32, 32, 3, N] random and y [N, 1] = ``labels``; returns X."""
    folder.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(1).integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
    for name in ("train_32x32.mat", "test_32x32.mat"):
        savemat(folder / name, {"X": x, "y": np.array(labels, np.uint8)[:, None]})
    return x


def write_npz(file: Path, **arrays) -> Path:
    """An .npz of digits28 (uint8 [N, 28, 28]) with ``arrays`` replacing or adding keys."""
    x, y = digits28()
    np.savez(file, **{"x_train": x[:60], "y_train": y[:60], "x_test": x[60:], "y_test": y[60:], **arrays})
    return file


def read_untold(path, preprocess="none", expect=None):
    """``read_dataset`` of IDX files whose folders do not tell MNIST from Fashion-MNIST: it says so."""
    with pytest.warns(UserWarning, match="do not tell MNIST from Fashion-MNIST"):
        return read_dataset(path, preprocess, expect)


# IDX: MNIST and Fashion-MNIST.


def test_flat_idx_files_read_as_pixels_over_255(tmp_path):
    x, y = write_mnist(tmp_path)
    task = read_untold(tmp_path)
    assert task.x_train.shape == (60, 1, 28, 28) and task.x_test.shape == (20, 1, 28, 28)
    assert task.x_train.dtype == torch.float32 and task.y_train.dtype == torch.int64
    assert torch.equal(task.x_train[:, 0], torch.from_numpy(x[:60].astype(np.float32) / 255))
    assert task.y_train.tolist() == y[:60].tolist() and task.y_test.tolist() == y[60:].tolist()
    assert (task.name, task.num_classes) == (EITHER_MNIST, 10)


@pytest.mark.parametrize(
    ("tree", "gz", "point_at", "name"),
    [
        ("MNIST/raw", False, ".", "mnist"),  # torchvision's root
        ("FashionMNIST/raw", True, ".", "fashion_mnist"),
        ("FashionMNIST/raw", True, "FashionMNIST", "fashion_mnist"),
        ("MNIST/raw", True, "MNIST/raw", "mnist"),
        ("data/fashion", True, "data/fashion", "fashion_mnist"),  # Fashion-MNIST's own repository
    ],
)
def test_gz_and_torchvision_trees_read_the_same_and_tell_the_dataset(tmp_path, tree, gz, point_at, name):
    write_mnist(tmp_path / "flat")
    write_mnist(tmp_path / "root" / tree, gz=gz)
    task, flat = read_dataset(tmp_path / "root" / point_at), read_untold(tmp_path / "flat")
    assert task.name == name
    assert all(torch.equal(getattr(task, k), getattr(flat, k)) for k in ("x_train", "y_train", "x_test", "y_test"))


def test_small_cnn_scales_idx_pixels_to_minus_one_one(tmp_path):
    x, _ = write_mnist(tmp_path / "MNIST" / "raw")
    task = read_dataset(tmp_path, "small-cnn")
    expected = torch.from_numpy(x[60:].astype(np.float32) / 255 * 2 - 1)[:, None]
    assert task.x_test.shape == (20, 1, 28, 28) and torch.allclose(task.x_test, expected, atol=1e-6)
    assert (task.x_test.min().item(), task.x_test.max().item()) == (-1.0, 1.0)


# CIFAR-10 and SVHN: layouts and values.


@pytest.mark.parametrize("subdir", [".", "cifar-10-batches-bin"])
def test_cifar_records_become_rgb_planes_in_batch_order(tmp_path, subdir):
    records = write_cifar(tmp_path / subdir)
    task = read_dataset(tmp_path)
    assert task.x_train.shape == (15, 3, 32, 32) and task.x_test.shape == (3, 3, 32, 32)
    assert task.name == "cifar10" and task.y_train.dtype == torch.int64
    assert task.y_train.tolist() == records[:15, 0].tolist() and task.y_test.tolist() == records[15:, 0].tolist()
    pixels = torch.from_numpy(records[:, 1:].astype(np.float32) / 255).reshape(18, 3, 32, 32)
    assert torch.equal(task.x_train, pixels[:15]) and torch.equal(task.x_test, pixels[15:])
    # record 4's green plane, row 2, column 5: byte 1 + 1024 + 2 * 32 + 5 of the record
    assert task.x_train[4, 1, 2, 5] == records[4, 1 + 1024 + 2 * 32 + 5] / np.float32(255)


def test_pixel_values_and_the_channel_mean_match_a_hand_computation(tmp_path):
    records = write_cifar(tmp_path)
    first = records[15]  # the first test image: pixel (0, 0) = RGB (0, 255, 51), pixel (0, 1) = (255, 255, 255)
    first[[1, 1 + 1024, 1 + 2048]] = (0, 255, 51)
    first[[2, 2 + 1024, 2 + 2048]] = 255
    (tmp_path / "test_batch.bin").write_bytes(records[15:].tobytes())
    none, small = read_dataset(tmp_path, "none"), read_dataset(tmp_path, "small-cnn")
    assert none.x_test[0, :, 0, 0].tolist() == pytest.approx([0.0, 1.0, 0.2])
    # small-cnn: each of 0, 1, 0.2 scaled to [-1, 1] gives -1, 1, -0.6; their mean is -0.2 (luma would give 0.45)
    assert small.x_test.shape == (3, 1, 32, 32)
    assert small.x_test[0, 0, 0, 0].item() == pytest.approx(-0.2, abs=1e-6)
    assert small.x_test[0, 0, 0, 1].item() == pytest.approx(1.0, abs=1e-6)


def test_svhn_mat_files_transpose_to_nchw_and_label_10_becomes_0(tmp_path):
    x = write_svhn(tmp_path)
    task = read_dataset(tmp_path)
    assert task.x_train.shape == (5, 3, 32, 32) and task.name == "svhn"
    assert task.y_train.tolist() == [0, 1, 5, 0, 9] and task.y_test.dtype == torch.int64
    expected = torch.from_numpy(x.transpose(3, 2, 0, 1).astype(np.float32) / 255)
    assert torch.equal(task.x_test, expected)
    assert task.x_test[3, 2, 7, 11] == x[7, 11, 2, 3] / np.float32(255)  # X[h, w, c, n] -> x[n, c, h, w]
    assert read_dataset(tmp_path, "small-cnn").x_train.shape == (5, 1, 32, 32)


# .npz: layouts and values kept as given.


def test_npz_layouts_nhw_nhwc_and_nchw_read_alike(tmp_path):
    x, _ = digits28()
    rgb = np.stack([x, x // 2, x // 3], axis=-1)  # [N, H, W, 3]
    nhw = read_dataset(write_npz(tmp_path / "nhw.npz"))
    nhwc = read_dataset(write_npz(tmp_path / "nhwc.npz", x_train=rgb[:60], x_test=rgb[60:]))
    nchw = read_dataset(
        write_npz(tmp_path / "nchw.npz", x_train=rgb[:60].transpose(0, 3, 1, 2), x_test=rgb[60:].transpose(0, 3, 1, 2))
    )
    assert nhw.x_train.shape == (60, 1, 28, 28) and nhwc.x_train.shape == (60, 3, 28, 28)
    assert torch.equal(nhwc.x_train, nchw.x_train) and torch.equal(nhwc.x_train[:, 0], nhw.x_train[:, 0])
    assert torch.equal(nhwc.x_test, nchw.x_test)
    assert (nhw.name, nhw.num_classes) == (UNKNOWN, 10)


def test_npz_float_images_are_kept_as_given_and_small_cnn_refuses_them(tmp_path):
    x = np.random.default_rng(2).normal(size=(80, 1, 8, 8)).astype(np.float64)
    file = write_npz(tmp_path / "f.npz", x_train=x[:60], x_test=x[60:])
    task = read_dataset(file, "none")
    assert task.x_train.dtype == torch.float32 and torch.equal(task.x_train, torch.from_numpy(x[:60].astype("f4")))
    with pytest.raises(WslError, match=re.escape(str(file)) + ": images are float64; small-cnn preprocesses uint8"):
        read_dataset(file, "small-cnn")


# The dataset's identity against the one a zoo names.


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("mnist", "mnist"),
        ("MNIST", "mnist"),
        ("fashion_mnist", "fashion_mnist"),
        ("Fashion-MNIST", "fashion_mnist"),
        ("FashionMNIST", "fashion_mnist"),
        ("cifar10", "cifar10"),
        ("CIFAR10-GS", "cifar10"),
        ("cifar-10", "cifar10"),
        ("svhn_cropped", "svhn"),
        ("SVHN", "svhn"),
        ("digits8", None),
        ("unknown", None),
    ],
)
def test_dataset_names_accept_usual_spellings(spelling, name):
    assert dataset_name(spelling) == name


def test_data_of_another_dataset_than_the_zoo_names_is_refused(tmp_path):
    write_cifar(tmp_path / "cifar")
    write_mnist(tmp_path / "tv" / "FashionMNIST" / "raw")
    with pytest.raises(WslError, match=re.escape(str(tmp_path / "cifar")) + " holds cifar10 data.*'mnist'"):
        read_dataset(tmp_path / "cifar", expect="mnist")
    with pytest.raises(WslError, match="holds fashion_mnist data, but the zoo names 'mnist'"):
        read_dataset(tmp_path / "tv", expect="mnist")
    assert read_dataset(tmp_path / "cifar", expect="CIFAR10-GS").name == "cifar10"
    assert read_dataset(tmp_path / "cifar", expect="digits8").name == "cifar10"  # no standard dataset: nothing to check
    check_dataset("svhn", "svhn_cropped", "x")


def test_untold_files_pass_for_either_mnist_and_npz_for_any(tmp_path):
    write_mnist(tmp_path / "flat")
    assert read_untold(tmp_path / "flat", expect="fashion_mnist").name == EITHER_MNIST
    assert read_untold(tmp_path / "flat", expect="mnist").name == EITHER_MNIST
    with pytest.raises(
        WslError,
        match=re.escape(f"{tmp_path / 'flat'} holds {EITHER_MNIST} data") + ", but the zoo names 'svhn_cropped'",
    ):
        read_dataset(tmp_path / "flat", expect="svhn_cropped")
    assert read_dataset(write_npz(tmp_path / "d.npz"), expect="cifar10").name == UNKNOWN


# Bad input: one clear error naming the file and what is wrong.


def test_missing_idx_files_are_listed(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / IDX[2]).unlink()
    (tmp_path / IDX[3]).unlink()
    with pytest.raises(WslError, match=re.escape(f"{tmp_path}: MNIST / Fashion-MNIST IDX files missing: {IDX[2]}, ")):
        read_dataset(tmp_path)
    with pytest.raises(WslError, match=re.escape(f"{IDX[3]} (raw or .gz); looked for {', '.join(IDX)}")):
        read_dataset(tmp_path)


def test_a_bad_idx_magic_number_is_refused_naming_the_file(tmp_path):
    write_mnist(tmp_path)
    x, _ = digits28()
    write(tmp_path / IDX[1], idx_bytes(x[:60]))  # images where the labels belong
    with pytest.raises(WslError, match=re.escape(f"{tmp_path / IDX[1]}: IDX magic number 00000803 is not 00000801")):
        read_dataset(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_a_truncated_idx_file_is_refused_naming_it(tmp_path, gz):
    write_mnist(tmp_path, gz=gz)
    x, _ = digits28()
    file = write(tmp_path / (IDX[0] + (".gz" if gz else "")), idx_bytes(x[:60])[:-100])
    with pytest.raises(WslError, match=re.escape(f"{file}: 46,956 bytes, but its header's [60, 28, 28] needs 47,056")):
        read_dataset(tmp_path)


def test_a_cut_gzip_file_is_refused_naming_it(tmp_path):
    write_mnist(tmp_path, gz=True)
    file = tmp_path / (IDX[2] + ".gz")
    file.write_bytes(file.read_bytes()[:50])
    with pytest.raises(WslError, match=re.escape(f"{file} is not a readable gzip file")):
        read_dataset(tmp_path)


def test_idx_labels_out_of_range_and_mismatched_counts_are_refused(tmp_path):
    x, y = write_mnist(tmp_path)
    y = y.copy()
    y[67] = 12  # test label 7
    write(tmp_path / IDX[3], idx_bytes(y[60:]))
    with pytest.raises(WslError, match=re.escape(f"{tmp_path / IDX[3]}: label 12 at index 7 is outside 0..9")):
        read_dataset(tmp_path)
    write(tmp_path / IDX[3], idx_bytes(y[60:79]))
    with pytest.raises(WslError, match=re.escape(f"{tmp_path / IDX[3]}: 20 images but 19 labels")):
        read_dataset(tmp_path)


def test_bad_cifar_batches_are_refused_naming_the_file(tmp_path):
    records = write_cifar(tmp_path)
    (tmp_path / "data_batch_3.bin").write_bytes(records[:3].tobytes()[:-1])
    with pytest.raises(WslError, match=re.escape(f"{tmp_path / 'data_batch_3.bin'}: 9,218 bytes is not a whole")):
        read_dataset(tmp_path)
    records[1, 0] = 10
    (tmp_path / "data_batch_3.bin").write_bytes(records[:3].tobytes())
    with pytest.raises(WslError, match=re.escape(f"{tmp_path / 'data_batch_3.bin'}: label 10 at index 1 is outside")):
        read_dataset(tmp_path)
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(WslError, match=re.escape(f"{tmp_path}: CIFAR-10 binary files missing: test_batch.bin;")):
        read_dataset(tmp_path)


def test_bad_svhn_files_are_refused_naming_the_file(tmp_path):
    write_svhn(tmp_path, labels=(1, 2, 11))
    with pytest.raises(WslError, match=r"train_32x32\.mat: label 11 at index 2 is outside 1\.\.10 \(SVHN's digits"):
        read_dataset(tmp_path)
    write_svhn(tmp_path, labels=(0, 2, 3))
    with pytest.raises(WslError, match=r"label 0 at index 0 is outside 1\.\.10"):
        read_dataset(tmp_path)
    write_svhn(tmp_path)
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1), np.uint8)})
    with pytest.raises(WslError, match=r"test_32x32\.mat: 4 images but 3 labels"):
        read_dataset(tmp_path)
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((4, 32, 32), np.uint8), "y": np.ones((4, 1), np.uint8)})
    with pytest.raises(WslError, match=r"test_32x32\.mat: X is uint8 \[4, 32, 32\], expected uint8 \[32, 32, 3, N\]"):
        read_dataset(tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file" * 20)
    with pytest.raises(WslError, match=r"test_32x32\.mat is not a readable MATLAB file"):
        read_dataset(tmp_path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y_test": None}, "key 'y_test' is missing (found x_train, y_train, x_test)"),
        ({"x_train": np.zeros((60, 2, 28, 28), np.uint8)}, "x_train has shape [60, 2, 28, 28]; expected [N, H, W]"),
        ({"x_train": np.zeros((60, 28, 28), np.int32)}, "x_train is int32; expected uint8 pixels"),
        ({"y_train": -np.ones(60, np.int64)}, "y_train holds label -1 at index 0; class indices are >= 0"),
        ({"y_train": np.zeros(60, np.float32)}, "y_train is float32 [60]; expected integer class indices"),
        ({"y_train": np.zeros(59, np.int64)}, "60 images but 59 labels"),
        ({"x_test": np.zeros((20, 32, 32), np.uint8)}, "train images are [N, C, H, W] = [60, 1, 28, 28] but test"),
        ({"x_test": np.zeros((0, 28, 28), np.uint8), "y_test": np.zeros(0, np.int64)}, "the test split holds no"),
        ({"x_test": np.array([None] * 20)}, "store plain numeric arrays"),
    ],
)
def test_bad_npz_files_are_refused_naming_the_file_and_key(tmp_path, arrays, message):
    x, y = digits28()
    full = {"x_train": x[:60], "y_train": y[:60], "x_test": x[60:], "y_test": y[60:], **arrays}
    file = tmp_path / "bad.npz"
    np.savez(file, **{k: v for k, v in full.items() if v is not None})
    with pytest.raises(WslError, match=re.escape(str(file)) + ".*" + re.escape(message)):
        read_dataset(file)


def test_unknown_paths_and_formats_are_refused_saying_what_was_looked_for(tmp_path):
    with pytest.raises(WslError, match=re.escape(f"{tmp_path / 'nowhere'} does not exist")):
        read_dataset(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("mnist")
    with pytest.raises(WslError, match=r"notes\.txt is not a directory or an \.npz file"):
        read_dataset(tmp_path / "notes.txt")
    with pytest.raises(WslError, match=re.escape(f"{tmp_path}: no dataset found; looked for IDX files {IDX[0]}")):
        read_dataset(tmp_path)
    with pytest.raises(WslError, match=r"CIFAR-10 binary batches data_batch_1\.bin.*SVHN train_32x32\.mat.*\.npz"):
        read_dataset(tmp_path)
    with pytest.raises(WslError, match="preprocess 'luma' is unknown; choose one of small-cnn, none"):
        read_dataset(tmp_path, "luma")


def test_a_folder_of_several_datasets_is_refused(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw")
    write_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)
    with pytest.raises(WslError, match=re.escape(f"{tmp_path} holds several datasets (MNIST / Fashion-MNIST IDX in")):
        read_dataset(tmp_path)
    write_svhn(tmp_path / "FashionMNIST")
    with pytest.raises(WslError, match=r"holds several datasets \(MNIST / Fashion-MNIST IDX in .*raw, SVHN in"):
        read_dataset(tmp_path / "FashionMNIST")


# `wsl zoo import --data`: the model-zoos layout without dataset.pt.


def without_dataset_pt(trained_public, dst: Path) -> Path:
    shutil.copytree(trained_public[0], dst, ignore=shutil.ignore_patterns("dataset.pt"))
    return dst


def digits_npz(file: Path, transpose: bool = False) -> Path:
    """The trained zoo's dataset.pt images (float [N, 1, 8, 8], preprocessed already) as an .npz."""
    data = digits_dataset()
    (x_train, y_train), (x_test, y_test) = data["trainset"].tensors, data["testset"].tensors
    if transpose:
        x_test = x_test.transpose(-1, -2)
    np.savez(file, x_train=x_train.numpy(), y_train=y_train.numpy(), x_test=x_test.numpy(), y_test=y_test.numpy())
    return file


def wsl_import(*args):
    return subprocess.run(
        [sys.executable, "-m", "wsl.cli", "zoo", "import", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_zoo_import_with_data_rechecks_the_originals_on_it(trained_public, tmp_path):
    src = without_dataset_pt(trained_public, tmp_path / "src")
    npz = digits_npz(tmp_path / "digits.npz")
    result = wsl_import(src, "--out", tmp_path / "out", "--task", "digits8", "--data", npz, "--preprocess", "none")
    assert result.returncode == 0, result.stderr
    zoo = load_zoo(tmp_path / "out")
    assert zoo.extra["task_check"]["models"] == 4 and zoo.extra["task_check"]["largest_abs_diff"] < 0.02
    assert torch.equal(zoo.task_data.x_test, digits_dataset()["testset"].tensors[0])
    largest = zoo.extra["task_check"]["largest_abs_diff"]
    assert f"originals re-run: largest |test_acc - recorded| {largest:.4f}" in result.stdout


def test_zoo_import_refuses_data_the_models_never_saw_or_of_another_dataset(trained_public, tmp_path):
    src = without_dataset_pt(trained_public, tmp_path / "src")
    result = wsl_import(src, "--out", tmp_path / "out", "--data", digits_npz(tmp_path / "t.npz", transpose=True))
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert re.search(r"error: the task data given \(--data\): the \d models recorded as working", result.stderr)
    assert "near chance" in result.stderr
    write_cifar(tmp_path / "cifar")
    result = wsl_import(src, "--out", tmp_path / "out", "--task", "mnist", "--data", tmp_path / "cifar")
    assert result.returncode == 2 and "holds cifar10 data, but the zoo names 'mnist'" in result.stderr


def test_data_given_beside_a_dataset_pt_is_refused(trained_public, tmp_path):
    with pytest.raises(WslError, match=r"digits_zoo ships its task data in dataset\.pt, and task data was given too"):
        import_public_zoo(trained_public[0], tmp_path / "out", task_data=read_dataset(digits_npz(tmp_path / "d.npz")))
