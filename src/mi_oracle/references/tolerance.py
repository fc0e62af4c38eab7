"""A float tolerance: ``|actual - expected| <= atol + rtol * |expected|``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|``."""

    atol: float
    rtol: float = 0.0

    def accepts(self, expected: float, actual: float) -> bool:
        return abs(actual - expected) <= self.atol + self.rtol * abs(expected)
