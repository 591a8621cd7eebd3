"""The one exception type of bayesdrop."""

from __future__ import annotations

from typing import Any


class BayesdropError(ValueError):
    """Raised for invalid arguments, inputs or models; the message names the argument."""


def expected(argument: str, allowed: str, got: Any) -> BayesdropError:
    """Build the standard message: "Expected argument `argument` to be allowed, but got got"."""
    return BayesdropError(f"Expected argument `{argument}` to be {allowed}, but got {got!r}.")


class BayesdropWarning(UserWarning):
    """A fallback that changes speed or meaning, or a setting that loses information."""
