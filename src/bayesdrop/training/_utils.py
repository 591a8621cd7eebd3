"""Seeds, devices, atomic checkpoints and the prior-derived weight decay."""

from __future__ import annotations

import contextlib
import pickle
import pickletools
import random
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .._errors import BayesdropError, expected
from .._io import atomic_open

__all__ = [
    "seed_everything",
    "resolve_device",
    "prior_weight_decay",
    "save_checkpoint",
    "load_checkpoint",
]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device), process-wide.

    A helper for scripts and notebooks: it changes the global random state of the whole
    process, which is the caller's choice to make. No bayesdrop function calls it; they seed
    their own generators and leave the caller's global state as they found it.

    Args:
        seed: a non-negative integer.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise expected("seed", "a non-negative integer", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _cuda_devices(device: str | torch.device | None) -> list[int]:
    # the CUDA generators a seeded block may use: all of them once CUDA is initialised (or the
    # block runs on CUDA); none otherwise, so a CPU block neither initialises CUDA nor leaves a
    # pending seed behind for the caller's later CUDA work
    if not torch.cuda.is_available():
        return []
    on_cuda = device is not None and torch.device(device).type == "cuda"
    if torch.cuda.is_initialized() or on_cuda:
        return list(range(torch.cuda.device_count()))
    return []


@contextlib.contextmanager
def seeded(seed: int, device: str | torch.device | None = None, *, python_and_numpy: bool = False) -> Iterator[None]:
    """Run a block with torch's global generators seeded, then restore the caller's states.

    Inside the block the global generators hold exactly what ``torch.manual_seed(seed)`` (and
    with ``python_and_numpy`` also ``random.seed(seed)`` and ``np.random.seed(seed % 2**32)``,
    i.e. :func:`seed_everything`) would give, so results are the same numbers as with a
    process-wide seed; on exit, also on an error, every generator the block could touch is
    put back (``torch.random.fork_rng``). CUDA generators are included when CUDA is
    initialised or ``device`` is a CUDA device.

    For library code that must use the global generators (layer initialisation, dropout in
    ``nn.Module.forward``); where an API takes a ``torch.Generator``, pass a local one instead.
    """
    devices = _cuda_devices(device)
    py_state = random.getstate() if python_and_numpy else None
    np_state = np.random.get_state() if python_and_numpy else None
    try:
        with torch.random.fork_rng(devices=devices):
            torch.default_generator.manual_seed(seed)  # what torch.manual_seed does on the CPU
            if devices:  # CUDA is initialised by now (fork_rng read its states): seeds at once
                torch.cuda.manual_seed_all(seed)
            if python_and_numpy:
                random.seed(seed)
                np.random.seed(seed % 2**32)
            yield
    finally:
        if py_state is not None:
            random.setstate(py_state)
        if np_state is not None:
            np.random.set_state(np_state)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda[:i]"`` into a device.

    Raises:
        BayesdropError: for an unknown device string or CUDA requested where there is none.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise expected("device", "'auto', 'cpu', 'cuda' or 'cuda:<i>'", device) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BayesdropError(
            f"Expected argument `device` to name an available device, but got {str(dev)!r} and "
            "CUDA is not available here; use device='auto' or 'cpu'."
        )
    return dev


def prior_weight_decay(length_scale: float, p: float, n: int, tau: float = 1.0) -> float:
    """Gal & Ghahramani's L2 coefficient ``lambda = l^2 (1 - p) / (2 N tau)``.

    It is the coefficient of ``lambda * ||W||^2`` added to the mean data loss (their Keras
    ``l2(lambda)``). A coupled-L2 optimizer (``torch.optim.Adam(weight_decay=...)``, which adds
    ``wd * W`` to the gradient) needs ``weight_decay = 2 * lambda``; :func:`fit` does this.

    Args:
        length_scale: prior length-scale ``l`` > 0.
        p: dropout probability in [0, 1).
        n: number of training points N >= 1.
        tau: model precision tau > 0 (1 for classification).

    Returns:
        lambda as a float.

    >>> round(prior_weight_decay(0.1, 0.5, 1000, 1.0), 15)  # 0.01 * 0.5 / 2000
    2.5e-06
    """
    if not length_scale > 0:
        raise expected("length_scale", "a positive float", length_scale)
    if not 0 <= p < 1:
        raise expected("p", "a float in [0, 1)", p)
    if not isinstance(n, int) or n < 1:
        raise expected("n", "a positive integer (the number of training points)", n)
    if not tau > 0:
        raise expected("tau", "a positive float", tau)
    return length_scale**2 * (1 - p) / (2 * n * tau)


_PLAIN_LEAVES = (torch.Tensor, bool, int, float, complex, str, bytes, type(None), torch.Size, torch.dtype, torch.device)
_PLAIN_DATA = "weights and plain data (tensors, numbers, strings, None, and lists, tuples and dicts of them)"


def _first_unsafe(obj: Any, where: str) -> tuple[str, str] | None:
    """``(where, type name)`` of the first value ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(obj, _PLAIN_LEAVES):
        return None
    if type(obj) in (dict, OrderedDict):  # exact types: a subclass pickles its class
        for key, value in obj.items():
            found = _first_unsafe(key, f"a key of {where}") or _first_unsafe(value, f"{where}[{key!r}]")
            if found is not None:
                return found
        return None
    if type(obj) in (list, tuple, set):  # exact types: not namedtuples
        for i, value in enumerate(obj):
            found = _first_unsafe(value, f"{where}[{i}]")
            if found is not None:
                return found
        return None
    return where, type(obj).__name__


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (temp file in the same folder + replace).

    A reader never sees a half-written checkpoint, even if the process is killed mid-write.
    ``state`` must hold only weights and plain data (tensors, numbers, strings, None, and lists,
    tuples and dicts of them: state dicts, optimizer states, metrics as dicts, configs as dicts
    or JSON text), which is all :func:`load_checkpoint` reads back.

    Raises:
        BayesdropError: when ``state`` holds another kind of object (named, with where it is).
    """
    found = _first_unsafe(state, "state")
    if found is not None:
        where, kind = found
        raise BayesdropError(
            f"Expected argument `state` to hold only {_PLAIN_DATA}, which load_checkpoint can read "
            f"back safely, but got an object of type {kind} at {where}; store it as plain data (e.g. "
            "dataclasses.asdict(...), a dict of tensors, or JSON text)."
        )
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, reading only weights and plain data.

    The file is read with ``torch.load(weights_only=True)``: tensors, numbers, strings, None,
    and lists, tuples and dicts of them. A file that holds any other Python object (a pickled
    class or function, whose unpickling could run arbitrary code: think of a ``model.pt``
    from a shared run folder or an MLflow artifact) is refused and nothing in it is run.

    Raises:
        BayesdropError: when the file does not exist, cannot be read, or holds something other
            than weights and plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise expected("path", "an existing checkpoint file", str(path))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own words for why, without its advice to load with weights_only=False
        reason = (str(err.__context__ or err).strip().splitlines() or ["unreadable pickle"])[0]
        objects = _pickled_objects(path)
        if objects is None:
            raise BayesdropError(
                f"Could not read checkpoint {str(path)!r}: it is not a file written by torch.save "
                f"(save_checkpoint), or it is damaged ({reason})."
            ) from None
        others = [name for name in objects if not name.startswith("torch.") and name != "collections.OrderedDict"]
        what = f"; it refers to {', '.join(others)}" if others else f" ({reason})"
        raise BayesdropError(
            f"Refused to load checkpoint {str(path)!r}: it holds something other than {_PLAIN_DATA}"
            f"{what}. It was not loaded, for safety: unpickling such a file can run arbitrary code. "
            "Load it yourself only if you trust where it came from, and save plain data with "
            "bayesdrop.training.save_checkpoint."
        ) from None
    except Exception as err:  # noqa: BLE001 - report which file is broken
        raise BayesdropError(f"Could not read checkpoint {str(path)!r}: {err}") from err


def _pickled_objects(path: Path) -> list[str] | None:
    """``module.name`` of every class or function the file's pickle refers to (nothing is run).

    The pickle is ``data.pkl`` of a ``torch.save`` zip archive, else the file itself (torch's
    legacy format, a plain pickle). None when there is no well-formed pickle to read.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
                if not members:
                    return None
                with archive.open(members[0]) as stream:
                    return _referenced_globals(stream)
        with open(path, "rb") as stream:
            return _referenced_globals(stream)
    except (OSError, zipfile.BadZipFile):
        return None


def _referenced_globals(stream: IO[bytes]) -> list[str] | None:
    names: list[str] = []
    strings: list[str] = []  # the strings pushed so far (STACK_GLOBAL takes the last two)
    memo: dict[int, Any] = {}
    last: Any = None
    try:
        for op, arg, _pos in pickletools.genops(stream):
            name = op.name
            if name in ("GLOBAL", "INST", "STACK_GLOBAL"):
                names.append(str(arg).replace(" ", ".") if name != "STACK_GLOBAL" else ".".join(strings[-2:]))
                last = None
            elif name == "MEMOIZE":
                memo[len(memo)] = last
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = last
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                last = memo.get(arg)
                if isinstance(last, str):
                    strings.append(last)
            else:
                last = arg if isinstance(arg, str) else None
                if last is not None:
                    strings.append(last)
    except Exception:  # noqa: BLE001 - not a well-formed pickle
        return None
    return list(dict.fromkeys(names))
