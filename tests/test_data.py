"""bayesdrop.data: IDX reading, loaders, checksums, splits, small sets, transforms."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bayesdrop.data as bdata
from bayesdrop import BayesdropError
from bayesdrop.data import _locate, mnist

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)


# ----------------------------------------------------------------------------- helpers
_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
          np.float64: 0x0E}  # fmt: skip


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written independently of the reader: magic, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, _CODES[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return path


def fake_split(folder: Path, split: str, n: int, *, gz: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    write(folder / f"{prefix}-images-idx3-ubyte", idx_bytes(images), gz)
    write(folder / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels), gz)
    return images, labels


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $BAYESDROP_DATA, an empty cache, and no Debian folder: only what a test puts there."""
    monkeypatch.delenv("BAYESDROP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist, "_FASHION", dataclasses.replace(mnist._FASHION, system_dirs=(str(tmp_path / "deb"),)))
    return tmp_path


# ----------------------------------------------------------------------------- IDX format
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write(tmp_path / "a-idx3", idx_bytes(array), gz)
    got = bdata.read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, array)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_parse_idx_any_shape(shape):
    array = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    np.testing.assert_array_equal(bdata.parse_idx(idx_bytes(array)), array)


def test_idx_corruptions_give_clear_errors(tmp_path):
    good = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    with pytest.raises(BayesdropError, match="magic number"):
        bdata.parse_idx(b"\x01\x00" + good[2:])
    with pytest.raises(BayesdropError, match="magic number"):
        bdata.parse_idx(good[:2] + b"\x07" + good[3:])  # unknown type code
    with pytest.raises(BayesdropError, match="truncated: header shape"):
        bdata.parse_idx(good[:-1])
    with pytest.raises(BayesdropError, match="longer than its header says"):
        bdata.parse_idx(good + b"\x00")
    with pytest.raises(BayesdropError, match="header declares 3 dimensions"):
        bdata.parse_idx(good[:9])
    with pytest.raises(BayesdropError, match="4-byte magic number"):
        bdata.parse_idx(b"\x00")
    with pytest.raises(BayesdropError, match=r"shape \(N, 28, 28\)"):
        bdata.parse_idx(good, expected_shape=(None, 28, 28))
    truncated_gz = write(tmp_path / "t-idx3", good * 50, gz=True)
    truncated_gz.write_bytes(truncated_gz.read_bytes()[:-12])
    with pytest.raises(BayesdropError, match="corrupt or truncated"):
        bdata.read_idx(truncated_gz)
    with pytest.raises(BayesdropError, match="existing file"):
        bdata.read_idx(tmp_path / "missing")


# ----------------------------------------------------------------------------- loaders
@pytest.mark.parametrize("gz", [False, True])
def test_loader_reads_generated_files(isolated, gz):
    images, labels = fake_split(isolated / "root", "test", 10000, gz=gz)
    x, y = bdata.load_mnist("test", isolated / "root", verify=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    np.testing.assert_allclose(x[:, 0].numpy(), images / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y.numpy(), labels)


def test_wrong_checksum_is_an_error(isolated):
    fake_split(isolated / "root", "test", 10000, gz=True)
    with pytest.raises(BayesdropError, match="Checksum mismatch .*t10k-images"):
        bdata.load_mnist("test", isolated / "root")
    with pytest.raises(BayesdropError, match="Checksum mismatch"):
        bdata.load_fashion_mnist("test", isolated / "root")


def test_wrong_size_and_labels_are_errors(isolated):
    fake_split(isolated / "small", "test", 100)
    with pytest.raises(BayesdropError, match=r"shape \(10000, 28, 28\).*\(100, 28, 28\)"):
        bdata.load_mnist("test", isolated / "small", verify=False)
    images = np.zeros((10000, 28, 28), np.uint8)
    write(isolated / "bad" / "t10k-images-idx3-ubyte", idx_bytes(images), False)
    write(isolated / "bad" / "t10k-labels-idx1-ubyte", idx_bytes(np.full(10000, 11, np.uint8)), False)
    with pytest.raises(BayesdropError, match="labels .* 0..9"):
        bdata.load_mnist("test", isolated / "bad", verify=False)
    with pytest.raises(BayesdropError, match="`split`"):
        bdata.load_mnist("val", isolated / "bad")


def test_missing_files_list_every_place_and_how_to_get_them(isolated, monkeypatch):
    monkeypatch.setenv("BAYESDROP_DATA", str(isolated / "env"))
    with pytest.raises(BayesdropError, match="Could not find the Fashion-MNIST train") as info:
        bdata.load_fashion_mnist("train", isolated / "nowhere")
    message = str(info.value)
    for place in (
        isolated / "nowhere",
        isolated / "nowhere" / "fashion-mnist",
        isolated / "nowhere" / "FashionMNIST" / "raw",
        isolated / "env" / "fashion-mnist",
        isolated / "cache" / "bayesdrop" / "fashion-mnist",
        isolated / "deb",
    ):
        assert f"{place}  (" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "BAYESDROP_DATA" in message and "download=True" in message


def test_places_are_marked_missing_or_present_and_none_is_left_out(isolated):
    (isolated / "root").mkdir()
    dirs = _locate.candidate_dirs("mnist", isolated / "root", (str(isolated / "deb"),))
    text = _locate.describe_dirs(dirs, "mnist")
    assert text.splitlines() == [
        f"  - {isolated / 'root'}  (root=; exists)",
        f"  - {isolated / 'root' / 'mnist'}  (root=; missing)",
        f"  - {isolated / 'cache' / 'bayesdrop' / 'mnist'}  (user cache; missing)",
        f"  - {isolated / 'deb'}  (system package; missing)",
        "  - $BAYESDROP_DATA/mnist  ($BAYESDROP_DATA is not set)",
    ]
    # no root, no $BAYESDROP_DATA, no cache folder: still every place, in the message as a whole
    with pytest.raises(BayesdropError) as info:
        bdata.load_fashion_mnist("test")
    message = str(info.value)
    assert f"{isolated / 'cache' / 'bayesdrop' / 'fashion-mnist'}  (user cache; missing)" in message
    assert f"{isolated / 'deb'}  (system package; missing)" in message
    assert "$BAYESDROP_DATA/fashion-mnist  ($BAYESDROP_DATA is not set)" in message
    assert 'load_fashion_mnist("test", download=True)' in message and "--data-dir" in message


def test_search_order_root_env_cache(isolated, monkeypatch):
    _, labels_cache = fake_split(isolated / "cache" / "bayesdrop" / "mnist", "test", 10000, seed=1)
    _, labels_env = fake_split(isolated / "env" / "mnist", "test", 10000, seed=2)
    _, labels_root = fake_split(isolated / "root", "test", 10000, seed=3)
    assert bdata.load_mnist("test", verify=False)[1].numpy().tolist() == labels_cache.tolist()
    monkeypatch.setenv("BAYESDROP_DATA", str(isolated / "env"))
    assert bdata.load_mnist("test", verify=False)[1].numpy().tolist() == labels_env.tolist()
    got = bdata.load_mnist("test", isolated / "root", verify=False)[1]
    assert got.numpy().tolist() == labels_root.tolist()
    _, labels_tv = fake_split(isolated / "tv" / "MNIST" / "raw", "test", 10000, seed=4)
    got = bdata.load_mnist("test", isolated / "tv", verify=False)[1]  # torchvision layout
    assert got.numpy().tolist() == labels_tv.tolist()


def test_digest_matches_both_kinds():
    raw = b"some idx bytes"
    gz = gzip.compress(raw)
    md5 = hashlib.md5(gz).hexdigest()
    sha = hashlib.sha256(raw).hexdigest()
    assert _locate.digest_matches(gz, raw, {"md5_gz": md5}) is True
    assert _locate.digest_matches(gz, raw, {"md5_gz": "0" * 32, "sha256_raw": sha}) is True
    assert _locate.digest_matches(raw, raw, {"sha256_raw": sha}) is True
    assert _locate.digest_matches(gz, raw, {"md5_gz": "0" * 32}) is False
    assert _locate.digest_matches(raw, raw, {"md5_gz": md5}) is None  # raw file, only gz MD5


def test_download_is_atomic_and_checked(tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    good_md5 = hashlib.md5(b"payload").hexdigest()
    dest = tmp_path / "cache" / "file.gz"
    with pytest.raises(BayesdropError, match="MD5 .* != expected"):
        _locate.download_file([source.as_uri()], dest, md5="0" * 32)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    with pytest.raises(BayesdropError, match="Could not download file.gz"):
        _locate.download_file([(tmp_path / "absent").as_uri()], dest)
    out = _locate.download_file([(tmp_path / "absent").as_uri(), source.as_uri()], dest, good_md5)
    assert out == dest and dest.read_bytes() == b"payload"


# ----------------------------------------------------------------------------- real files
def test_real_mnist_test_set(shared_data):
    x, y = bdata.load_mnist("test", shared_data)  # checksums verified
    assert x.shape == (10000, 1, 28, 28) and 0.0 == x.min() and x.max() == 1.0
    # Class counts of the MNIST test set (LeCun et al.), as in the file.
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    with pytest.raises(BayesdropError, match="Could not find the MNIST train split"):
        bdata.load_mnist("train", shared_data)


def test_real_mnist_checksums_are_the_shared_files(shared_data):
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = gzip.decompress((shared_data / "mnist" / f"{stem}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == mnist._MNIST.checksums[stem]["sha256_raw"]


def test_mnist_test_split(shared_data):
    (xt, yt), (xv, yv) = bdata.load_mnist_test_split(shared_data, seed=0)
    assert xt.shape == (9000, 1, 28, 28) and xv.shape == (1000, 1, 28, 28)
    _, y = bdata.load_mnist("test", shared_data)
    assert torch.equal(torch.bincount(torch.cat([yt, yv])), torch.bincount(y))
    (xt2, _), (xv2, _) = bdata.load_mnist_test_split(shared_data, seed=0)
    assert torch.equal(xv, xv2) and torch.equal(xt, xt2)
    (_, _), (xv3, _) = bdata.load_mnist_test_split(shared_data, seed=1)
    assert not torch.equal(xv, xv3)


@needs_fashion
def test_real_fashion_mnist_debian_files(isolated, monkeypatch):
    monkeypatch.setattr(mnist, "_FASHION", dataclasses.replace(mnist._FASHION, system_dirs=(str(FASHION_DIR),)))
    x, y = bdata.load_fashion_mnist("test")  # found in the Debian folder, checksums verified
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [1000] * 10  # Fashion-MNIST is balanced


@needs_fashion
def test_ood_pair(shared_data):
    pair = bdata.load_ood_pair("fashion-mnist", mnist_root=shared_data, n=50, seed=0)
    assert pair.x_in.shape == pair.x_out.shape == (50, 1, 28, 28)
    assert (pair.in_name, pair.out_name) == ("fashion-mnist", "mnist")
    again = bdata.load_ood_pair("fashion-mnist", mnist_root=shared_data, n=50, seed=0)
    assert torch.equal(pair.x_out, again.x_out)
    with pytest.raises(BayesdropError, match="`in_dist`"):
        bdata.load_ood_pair("cifar")


# ----------------------------------------------------------------------------- CO2, digits
def test_co2(shared_data, tmp_path):
    co2 = bdata.load_co2(shared_data)
    assert co2.x_train.shape == co2.y_train.shape == (272, 1)
    assert co2.x_test.shape == (1000, 1)
    # README: x normalised to [-1.7257, 1.7257]; test inputs extend to 3.7237.
    assert co2.x_train.min().item() == pytest.approx(-1.7257, abs=1e-4)
    assert co2.x_train.max().item() == pytest.approx(1.7257, abs=1e-4)
    assert co2.x_test.max().item() == pytest.approx(3.7237, abs=1e-4)
    with pytest.raises(BayesdropError, match="Could not find the CO2 data"):
        bdata.load_co2(tmp_path)
    (tmp_path / "train.csv").write_text("a,b\n1,2\n")
    (tmp_path / "test.csv").write_text("x,y\n1,2\n")
    with pytest.raises(BayesdropError, match="header 'x,y'"):
        bdata.load_co2(tmp_path)


def test_digits_against_scikit_learn():
    from sklearn.datasets import load_digits as sk_digits

    ref = sk_digits()
    x8, y = bdata.load_digits(8)
    np.testing.assert_allclose(x8[:, 0].numpy(), ref.images / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), ref.target)
    x28, _ = bdata.load_digits(28)
    assert x28.shape == (1797, 1, 28, 28) and x28.min() >= 0 and x28.max() <= 1
    xp, _ = bdata.load_digits(28, mode="pad")
    assert torch.equal(xp[:, :, 10:18, 10:18], x8)
    assert xp.sum() == pytest.approx(x8.sum().item(), rel=1e-6)
    with pytest.raises(BayesdropError, match="`mode`"):
        bdata.load_digits(28, mode="crop")


def test_import_does_not_load_scikit_learn():
    code = "import sys, bayesdrop.data, bayesdrop.models; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- splits, registry
def test_train_val_split_and_loader():
    x = torch.arange(100.0).reshape(100, 1)
    y = torch.arange(100)
    (xt, yt), (xv, yv) = bdata.train_val_split(x, y, val_size=0.2, seed=3)
    assert len(xv) == 20 and len(xt) == 80
    assert sorted(torch.cat([yt, yv]).tolist()) == list(range(100))
    assert torch.equal(xt[:, 0].long(), yt)
    with pytest.raises(BayesdropError, match="`val_size`"):
        bdata.train_val_split(x, y, val_size=100)
    with pytest.raises(BayesdropError, match="`y`"):
        bdata.train_val_split(x, y[:5], val_size=10)
    order1 = [b[1].tolist() for b in bdata.make_loader(x, y, batch_size=32, shuffle=True, seed=5)]
    order2 = [b[1].tolist() for b in bdata.make_loader(x, y, batch_size=32, shuffle=True, seed=5)]
    assert order1 == order2 and sorted(sum(order1, [])) == list(range(100))
    assert [len(b[0]) for b in bdata.make_loader(x, batch_size=40)] == [40, 40, 20]


def test_registry_and_load_dataset():
    names = bdata.list_datasets()
    for name in ("fashion-mnist", "mnist", "mnist-10k", "digits", "co2"):
        assert isinstance(names[name], str) and names[name]
    splits = bdata.load_dataset("digits", seed=0, max_train=500)
    assert splits.task == "classification" and splits.num_classes == 10
    assert splits.input_shape == (1, 28, 28)
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (500, 200, 300)
    loaders = splits.loaders(batch_size=64)
    xb, yb = next(iter(loaders["train"]))
    assert xb.shape == (64, 1, 28, 28) and yb.dtype == torch.int64
    with pytest.raises(BayesdropError, match="`name`.*digits"):
        bdata.load_dataset("cifar10")
    with pytest.raises(BayesdropError, match="`split`.*only the UCI sets"):
        bdata.load_dataset("digits", split=1)


def test_load_dataset_uci_split_in_original_units(shared_data):
    splits = bdata.load_dataset("yacht", shared_data, split=3, val_size=0)
    raw = bdata.load_uci("yacht", shared_data / "uci", split=3)
    assert splits.task == "regression" and splits.num_classes is None and splits.input_shape == (6,)
    assert splits.y_train.shape == (len(raw.y_train), 1) and splits.y_train.dtype == torch.float32
    torch.testing.assert_close(splits.x_test, raw.x_test.float())
    torch.testing.assert_close(splits.y_test[:, 0], raw.y_test.float())
    with_val = bdata.load_dataset("yacht", shared_data / "uci", split=3, val_size=0.2, seed=1)
    assert len(with_val.x_train) + len(with_val.x_val) == len(raw.x_train)
    with pytest.raises(BayesdropError, match="`split`"):
        bdata.load_dataset("yacht", shared_data, split=20)


def test_uci_not_found_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("BAYESDROP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(BayesdropError, match=r"(?s)'boston' not found.*bostonHousing.*user cache.*BAYESDROP_DATA"):
        bdata.load_dataset("boston", tmp_path)


def test_load_dataset_co2_and_mnist_10k(shared_data):
    co2 = bdata.load_dataset("co2", shared_data)
    assert co2.task == "regression" and co2.x_val is None and co2.y_test is None
    m = bdata.load_dataset("mnist-10k", shared_data)
    assert (len(m.x_train), len(m.x_val), m.x_test) == (9000, 1000, None)


def test_uci_reexport_is_lazy():
    from bayesdrop.data import uci

    assert bdata.load_uci is uci.load_uci and bdata.UCI_DATASETS is uci.UCI_DATASETS
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bdata.nope  # noqa: B018


# ----------------------------------------------------------------------------- transforms
def test_rotation_identities():
    image = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(bdata.rotate(image, 0.0), image, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        bdata.rotate(image, 90.0), torch.rot90(image, 1, (-2, -1)), atol=1e-5, rtol=0
    )  # counter-clockwise
    turned = image
    for _ in range(4):
        turned = bdata.rotate(turned, 90.0)
    torch.testing.assert_close(turned, image, atol=1e-5, rtol=0)
    series, angles = bdata.rotation_series(image, steps=5, total_angle=360.0)
    assert series.shape == (5, 1, 28, 28)
    assert angles.tolist() == [0.0, 90.0, 180.0, 270.0, 360.0]
    torch.testing.assert_close(series[2], torch.rot90(image, 2, (-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(series[-1], image, atol=1e-5, rtol=0)
    batch = torch.stack([image, image])
    out = bdata.rotate(batch, [0.0, 180.0])
    torch.testing.assert_close(out[1], torch.rot90(image, 2, (-2, -1)), atol=1e-5, rtol=0)
    with pytest.raises(BayesdropError, match="`angle`"):
        bdata.rotate(batch, [1.0, 2.0, 3.0])
    with pytest.raises(BayesdropError, match="`image`"):
        bdata.rotate(torch.rand(28, 28), 10.0)


def test_rotation_moves_an_off_centre_blob_counter_clockwise():
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    blob = torch.exp(-((yy - 7.5) ** 2 + (xx - 13.5) ** 2) / 4.0)[None]  # 6 px above centre
    for angle in (30.0, 45.0, 133.0):
        out = bdata.rotate(blob, angle)[0]
        com = torch.stack([(out * yy).sum(), (out * xx).sum()]) / out.sum()
        t = torch.tensor(angle).deg2rad()
        # Counter-clockwise as displayed (rows grow downwards): (dy, dx) = -6 (cos t, sin t).
        want = torch.stack([13.5 - 6 * torch.cos(t), 13.5 - 6 * torch.sin(t)])
        torch.testing.assert_close(com, want, atol=0.05, rtol=0)
        assert out.sum().item() == pytest.approx(blob.sum().item(), rel=1e-2)


@settings(max_examples=20, deadline=None)
@given(steps=st.integers(2, 12), seed=st.integers(0, 100))
def test_morph_endpoints_and_linearity(steps, seed):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.rand(1, 6, 6, generator=gen), torch.rand(1, 6, 6, generator=gen)
    path, alphas = bdata.morph(a, b, steps)
    assert path.shape == (steps, 1, 6, 6)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert alphas[0] == 0 and alphas[-1] == 1
    expected = a + alphas.view(-1, 1, 1, 1) * (b - a)
    torch.testing.assert_close(path, expected, atol=1e-6, rtol=0)


def test_morph_errors():
    with pytest.raises(BayesdropError, match="`steps`"):
        bdata.morph(torch.zeros(3), torch.ones(3), 1)
    with pytest.raises(BayesdropError, match="`end`"):
        bdata.morph(torch.zeros(3), torch.ones(4), 3)


def test_noise():
    x = torch.full((200, 200), 0.5)
    noisy = bdata.add_noise(x, 0.1, seed=0, clip=None)
    assert torch.equal(noisy, bdata.add_noise(x, 0.1, seed=0, clip=None))
    diff = noisy - x
    assert abs(diff.mean().item()) < 0.003 and diff.std().item() == pytest.approx(0.1, rel=0.02)
    clipped = bdata.add_noise(x, 2.0, seed=0)
    assert clipped.min() >= 0 and clipped.max() <= 1
    series = bdata.noise_series(x[:5, :5], [0.0, 0.1, 0.2], seed=0, clip=None)
    assert torch.equal(series[0], x[:5, :5])
    torch.testing.assert_close(series[2] - x[:5, :5], 2 * (series[1] - x[:5, :5]))
    with pytest.raises(BayesdropError, match="`std`"):
        bdata.add_noise(x, -1.0)


def test_shared_data_root_follows_the_environment(tmp_path, monkeypatch):
    from bayesdrop.data import shared_data_root

    monkeypatch.setenv("BAYESDROP_SHARED_DATA", str(tmp_path))
    assert shared_data_root() == tmp_path
    monkeypatch.setenv("BAYESDROP_SHARED_DATA", str(tmp_path / "missing"))
    assert shared_data_root() is None
