"""MNIST and Fashion-MNIST from IDX files: found locally, checked, or downloaded on request."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._errors import BayesdropError, expected
from ._idx import parse_idx
from ._locate import cache_dir, candidate_dirs, describe_dirs, digest_matches, download_file
from .splits import train_val_split

__all__ = [
    "load_mnist",
    "load_fashion_mnist",
    "load_mnist_test_split",
    "load_ood_pair",
    "OODPair",
    "FASHION_MNIST_CLASSES",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


@dataclass(frozen=True)
class _IdxSet:
    name: str  # folder name under roots and the cache
    title: str
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...]
    # file stem -> checksums: "md5_gz" = published MD5 of the .gz download,
    # "sha256_raw" = SHA-256 of the decompressed bytes (measured on the files we have).
    checksums: dict[str, dict[str, str]]
    apt_package: str | None = None
    torchvision_dir: str = ""  # torchvision's layout under a root: <root>/<dir>/raw


_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SIZES = {"train": 60000, "test": 10000}

_MNIST = _IdxSet(
    name="mnist",
    title="MNIST",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    system_dirs=(),
    torchvision_dir="MNIST",
    checksums={
        # Published MD5s of the original distribution (as used by torchvision and others).
        # The train files were not available to check against; the t10k SHA-256s were
        # measured on ../shared/data/mnist (whose .gz bytes differ from the published ones
        # though the sizes agree, hence both kinds of checksum are accepted).
        "train-images-idx3-ubyte": {"md5_gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
        "train-labels-idx1-ubyte": {"md5_gz": "d53e105ee54ea40749a09fcbcd1e9432"},
        "t10k-images-idx3-ubyte": {
            "md5_gz": "9fb629c4189551a2d022fa330f9573f3",
            "sha256_raw": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        "t10k-labels-idx1-ubyte": {
            "md5_gz": "ec29112dd5afa0611ce80d1b7f02629c",
            "sha256_raw": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    },
)

_FASHION = _IdxSet(
    name="fashion-mnist",
    title="Fashion-MNIST",
    mirrors=(
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    checksums={
        # md5_gz: published by Zalando; sha256_raw: measured on Debian's dataset-fashion-mnist
        # (its .gz files lack the original file-name header field, so their MD5 differs).
        "train-images-idx3-ubyte": {
            "md5_gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "sha256_raw": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        },
        "train-labels-idx1-ubyte": {
            "md5_gz": "25c81989df183df01b3e8a0aad5dffbe",
            "sha256_raw": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        },
        "t10k-images-idx3-ubyte": {
            "md5_gz": "bef4ecab320f06d8554ea6380940ec79",
            "sha256_raw": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        },
        "t10k-labels-idx1-ubyte": {
            "md5_gz": "bb300cfdad3c16e7a12a480ee83cd310",
            "sha256_raw": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    },
    apt_package="dataset-fashion-mnist",
    torchvision_dir="FashionMNIST",
)


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _how_to_get(spec: _IdxSet) -> str:
    ways = []
    if spec.apt_package:
        ways.append(f"install the Debian/Ubuntu package: `sudo apt-get install {spec.apt_package}`")
    loader = f"bayesdrop.data.load_{spec.name.replace('-', '_')}"
    ways += [
        "put the IDX files (.gz or raw) in a folder and pass `root=<folder>` (CLI: `--data-dir "
        f"<folder>`), or set `BAYESDROP_DATA=<dir>` with the files in `<dir>/{spec.name}/`",
        f"download them into the user cache ({cache_dir(spec.name)}) from Python: "
        f'`{loader}("train", download=True)` and `{loader}("test", download=True)`, from {spec.mirrors[0]}',
    ]
    return "\n".join(f"  * {w}" for w in ways)


def _load_split(
    spec: _IdxSet,
    split: str,
    root: str | PathLike[str] | None,
    download: bool,
    verify: bool,
) -> tuple[Tensor, Tensor]:
    if split not in _FILES:
        raise expected("split", '"train" or "test"', split)
    img_stem, lbl_stem = _FILES[split]
    dirs = candidate_dirs(spec.name, root, spec.system_dirs, (f"{spec.torchvision_dir}/raw",))
    found: tuple[Path, Path] | None = None
    for folder, _label in dirs:
        img, lbl = _find_file(folder, img_stem), _find_file(folder, lbl_stem)
        if img is not None and lbl is not None:
            found = (img, lbl)
            break
    if found is None and download:
        cache = cache_dir(spec.name)
        found = tuple(  # type: ignore[assignment]
            download_file(
                [m + f"{stem}.gz" for m in spec.mirrors],
                cache / f"{stem}.gz",
                md5=spec.checksums[stem]["md5_gz"],
            )
            for stem in (img_stem, lbl_stem)
        )
    if found is None:
        raise BayesdropError(
            f"Could not find the {spec.title} {split} split ({img_stem}[.gz] and "
            f"{lbl_stem}[.gz]). Looked in:\n{describe_dirs(dirs, spec.name)}\nTo get the data:\n"
            f"{_how_to_get(spec)}"
        )
    img_path, lbl_path = found
    images = _read_checked(spec, img_path, img_stem, (_SIZES[split], 28, 28), verify)
    labels = _read_checked(spec, lbl_path, lbl_stem, (_SIZES[split],), verify)
    if labels.max() > 9:
        raise BayesdropError(f"Expected the labels in {lbl_path} to be 0..9, but got a maximum of {labels.max()}.")
    x = torch.from_numpy(images).to(torch.float32).div_(255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def _read_checked(spec: _IdxSet, path: Path, stem: str, shape: tuple[int, ...], verify: bool) -> np.ndarray:
    file_bytes = path.read_bytes()
    array = parse_idx(file_bytes, source=str(path), expected_shape=shape)
    if array.dtype != np.uint8:
        raise BayesdropError(f"Expected {path} to hold unsigned bytes (IDX type 0x08), but got {array.dtype}.")
    if verify:
        raw = gzip.decompress(file_bytes) if file_bytes[:2] == b"\x1f\x8b" else file_bytes
        if digest_matches(file_bytes, raw, spec.checksums[stem]) is False:
            known = ", ".join(f"{k}={v}" for k, v in spec.checksums[stem].items())
            raise BayesdropError(
                f"Checksum mismatch for {path}: it is not the published {spec.title} file "
                f"({known}). It may be corrupt or a different data set; delete it and get the "
                f"data again, or pass `verify=False` to use it anyway."
            )
    return array


def load_mnist(
    split: str = "train",
    root: str | PathLike[str] | None = None,
    *,
    download: bool = False,
    verify: bool = True,
) -> tuple[Tensor, Tensor]:
    """Load an MNIST split from IDX files.

    Looks, in order, in ``root`` (the files themselves, ``root/mnist/`` so the project's
    ``shared/data`` folder works, or torchvision's ``root/MNIST/raw/``),
    ``$BAYESDROP_DATA/mnist``, ``~/.cache/bayesdrop/mnist``; downloads into the cache when
    ``download=True`` and nothing was found.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root: an explicit folder to look in first.
        download: fetch the files from the official mirrors if they are not found.
        verify: check the files against their known checksums (published MD5 of the ``.gz``
            or SHA-256 of the decompressed bytes); a file with no applicable checksum (e.g. a
            raw, uncompressed train file) is only checked for its IDX structure.

    Returns:
        ``(images, labels)``: float32 ``(N, 1, 28, 28)`` in [0, 1] and int64 ``(N,)``.

    Raises:
        BayesdropError: files missing (the message lists every folder searched and how to get
            the data), corrupt, truncated or failing their checksum.
    """
    return _load_split(_MNIST, split, root, download, verify)


def load_fashion_mnist(
    split: str = "train",
    root: str | PathLike[str] | None = None,
    *,
    download: bool = False,
    verify: bool = True,
) -> tuple[Tensor, Tensor]:
    """Load a Fashion-MNIST split from IDX files.

    Looks, in order, in ``root`` (or ``root/fashion-mnist/``, ``root/FashionMNIST/raw/``),
    ``$BAYESDROP_DATA/fashion-mnist``, ``~/.cache/bayesdrop/fashion-mnist`` and Debian's
    ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``); downloads into
    the cache when ``download=True``. Class names: :data:`FASHION_MNIST_CLASSES`. Arguments,
    returns and errors as :func:`load_mnist`.
    """
    return _load_split(_FASHION, split, root, download, verify)


def load_mnist_test_split(
    root: str | PathLike[str] | None = None,
    *,
    val_size: int = 1000,
    seed: int = 0,
    verify: bool = True,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Split the 10,000-image MNIST *test* set into train and validation parts (seeded).

    For machines that have only the test set (like the project's ``shared/data/mnist``).
    The split is a seeded random permutation: the same ``seed`` gives the same split.

    Returns:
        ``((x_train, y_train), (x_val, y_val))`` with ``10000 - val_size`` and ``val_size``
        examples: images ``(N, 1, 28, 28)`` float32 in [0, 1], labels int64 ``(N,)``.
    """
    x, y = load_mnist("test", root, verify=verify)
    return train_val_split(x, y, val_size=val_size, seed=seed)


@dataclass(frozen=True)
class OODPair:
    """In-distribution and out-of-distribution test images, for OOD-detection metrics.

    Attributes:
        x_in: ``(N_in, 1, 28, 28)`` in-distribution images; ``y_in`` their labels ``(N_in,)``.
        x_out: ``(N_out, 1, 28, 28)`` out-of-distribution images; ``y_out`` their labels.
        in_name, out_name: the data set names.
    """

    x_in: Tensor
    y_in: Tensor
    x_out: Tensor
    y_out: Tensor
    in_name: str
    out_name: str


def load_ood_pair(
    in_dist: str = "fashion-mnist",
    *,
    fashion_root: str | PathLike[str] | None = None,
    mnist_root: str | PathLike[str] | None = None,
    n: int | None = None,
    seed: int = 0,
    verify: bool = True,
) -> OODPair:
    """Fashion-MNIST test set vs MNIST test set, one as in-distribution, the other as OOD.

    Args:
        in_dist: ``"fashion-mnist"`` (model trained on Fashion-MNIST, MNIST digits are OOD) or
            ``"mnist"`` (the reverse).
        fashion_root, mnist_root: explicit folders for each set (see the loaders).
        n: keep a seeded random subset of ``n`` images of each side (all 10,000 if None).
        seed: seed of that subset.
    """
    if in_dist not in ("fashion-mnist", "mnist"):
        raise expected("in_dist", '"fashion-mnist" or "mnist"', in_dist)
    fashion = load_fashion_mnist("test", fashion_root, verify=verify)
    digits = load_mnist("test", mnist_root, verify=verify)
    (x_in, y_in), (x_out, y_out) = (
        (fashion, digits)
        if in_dist == "fashion-mnist"
        else (
            digits,
            fashion,
        )
    )
    if n is not None:
        if not isinstance(n, int) or not 0 < n <= min(len(x_in), len(x_out)):
            raise expected("n", f"an int in [1, {min(len(x_in), len(x_out))}] or None", n)
        gen = torch.Generator().manual_seed(seed)
        i_in = torch.randperm(len(x_in), generator=gen)[:n]
        i_out = torch.randperm(len(x_out), generator=gen)[:n]
        x_in, y_in, x_out, y_out = x_in[i_in], y_in[i_in], x_out[i_out], y_out[i_out]
    out_dist = "mnist" if in_dist == "fashion-mnist" else "fashion-mnist"
    return OODPair(x_in, y_in, x_out, y_out, in_dist, out_dist)
