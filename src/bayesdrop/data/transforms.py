"""Input transforms for uncertainty experiments: rotation series, morphs, additive noise."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .._errors import expected

__all__ = ["rotate", "rotation_series", "morph", "add_noise", "noise_series"]


def _as_batch(image: Tensor, argument: str) -> tuple[Tensor, bool]:
    """``(C, H, W)`` -> ``(1, C, H, W)``; ``(B, C, H, W)`` unchanged; returns (batch, squeezed)."""
    if not isinstance(image, Tensor) or image.ndim not in (3, 4) or not image.is_floating_point():
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise expected(argument, "a float tensor of shape (C, H, W) or (B, C, H, W)", got)
    return (image.unsqueeze(0), True) if image.ndim == 3 else (image, False)


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise expected("steps", "a positive int", steps)


def rotate(image: Tensor, angle: float | Sequence[float] | Tensor, *, fill: float = 0.0) -> Tensor:
    """Rotate images counter-clockwise (as displayed, row 0 on top) about their centre.

    Bilinear sampling with ``torch.nn.functional.affine_grid`` / ``grid_sample``; pixels that
    come from outside the image get ``fill``. Multiples of 90 degrees on square images are
    exact up to float rounding (pixel centres map onto pixel centres).

    Args:
        image: ``(C, H, W)`` or ``(B, C, H, W)`` float images.
        angle: degrees; one value for all images, or ``B`` values (one per image).
        fill: value of pixels rotated in from outside.

    Returns:
        Rotated images, same shape as ``image``.
    """
    batch, squeezed = _as_batch(image, "image")
    angles = torch.as_tensor(angle, dtype=torch.float64).reshape(-1)
    if angles.numel() not in (1, batch.shape[0]) or not torch.isfinite(angles).all():
        raise expected("angle", f"a finite number or {batch.shape[0]} numbers", angle)
    angles = angles.expand(batch.shape[0]) * (math.pi / 180.0)
    h, w = batch.shape[-2:]
    cos, sin = torch.cos(angles), torch.sin(angles)
    # theta maps output (x, y) in normalised coords (x right, y down) to the input location.
    # Aspect ratio: normalised units differ along x and y when H != W.
    theta = torch.zeros(batch.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h
    theta[:, 1, 1] = cos
    theta = theta.to(batch.dtype)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    shifted = batch - fill
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out + fill
    return out.squeeze(0) if squeezed else out


def rotation_series(
    image: Tensor, steps: int = 12, total_angle: float = 180.0, *, fill: float = 0.0
) -> tuple[Tensor, Tensor]:
    """One image rotated in ``steps`` equal steps from 0 to ``total_angle`` degrees (inclusive).

    Args:
        image: ``(C, H, W)`` one image.
        steps: number of images in the series (the first is the unrotated image).
        total_angle: rotation of the last image, in degrees (counter-clockwise).

    Returns:
        ``(images, angles)``: ``(steps, C, H, W)`` and ``(steps,)`` degrees.
    """
    _check_steps(steps)
    if not isinstance(image, Tensor) or image.ndim != 3:
        raise expected("image", "one image of shape (C, H, W)", getattr(image, "shape", image))
    angles = torch.linspace(0.0, float(total_angle), steps, dtype=torch.float64)
    rotated = rotate(image.unsqueeze(0).expand(steps, *image.shape), angles, fill=fill)
    return rotated, angles.to(torch.float32)


def morph(start: Tensor, end: Tensor, steps: int = 10) -> tuple[Tensor, Tensor]:
    """Linear interpolation from ``start`` to ``end`` in ``steps`` images (both ends included).

    Image ``i`` is ``(1 - a_i) * start + a_i * end`` with ``a_i = i / (steps - 1)``, so the
    first image equals ``start`` and the last equals ``end`` exactly.

    Args:
        start, end: images of the same shape ``(*shape)``, e.g. ``(C, H, W)``.
        steps: number of images (>= 2).

    Returns:
        ``(images, alphas)``: ``(steps, *shape)`` and ``(steps,)``.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise expected("steps", "an int >= 2", steps)
    if not isinstance(start, Tensor) or not isinstance(end, Tensor) or start.shape != end.shape:
        raise expected(
            "end",
            f"a tensor of the same shape as `start` {tuple(getattr(start, 'shape', ()))}",
            tuple(getattr(end, "shape", ())) or type(end).__name__,
        )
    alphas = torch.linspace(0.0, 1.0, steps, dtype=start.dtype)
    a = alphas.reshape(-1, *([1] * start.ndim))
    return (1.0 - a) * start.unsqueeze(0) + a * end.unsqueeze(0), alphas


def add_noise(
    x: Tensor,
    std: float,
    *,
    seed: int | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """Add Gaussian noise ``N(0, std^2)`` to every element, optionally clipped to a range.

    Args:
        x: any float tensor, e.g. ``(B, C, H, W)`` images in [0, 1].
        std: noise standard deviation (>= 0).
        seed: seed of a private generator (reproducible, leaves the global RNG alone); None
            draws from the global RNG.
        clip: ``(low, high)`` to clamp the result into, or None.

    Returns:
        The noisy tensor, shape of ``x``.
    """
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise expected("x", "a float tensor", type(x).__name__)
    if not isinstance(std, int | float) or isinstance(std, bool) or not std >= 0:
        raise expected("std", "a number >= 0", std)
    generator = None if seed is None else torch.Generator(device=x.device).manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    out = x + float(std) * noise
    return out.clamp(*clip) if clip is not None else out


def noise_series(
    image: Tensor,
    stds: Sequence[float],
    *,
    seed: int = 0,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """One image with increasing Gaussian noise: ``(len(stds), *image.shape)``.

    The same standard-normal draw is scaled by each ``std`` so that the series changes only
    in the noise level.
    """
    if not isinstance(image, Tensor) or not image.is_floating_point():
        raise expected("image", "a float tensor", type(image).__name__)
    levels = torch.as_tensor(list(stds), dtype=image.dtype)
    if levels.ndim != 1 or levels.numel() == 0 or not (levels >= 0).all():
        raise expected("stds", "a non-empty sequence of numbers >= 0", stds)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(image.shape, generator=gen, dtype=image.dtype).to(image.device)
    out = image.unsqueeze(0) + levels.to(image.device).reshape(-1, *([1] * image.ndim)) * noise
    return out.clamp(*clip) if clip is not None else out
