"""Exact money arithmetic (google.type.Money semantics: units + nanos, one currency); pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["NANOS_PER_UNIT", "Money"]

NANOS_PER_UNIT = 1_000_000_000


@dataclass(frozen=True, order=True)
class Money:
    """An amount in an ISO 4217 currency, held as a whole number of nanos: never a float."""

    currency: str
    nanos_total: int

    @classmethod
    def of(cls, currency: str, units: int, nanos: int) -> Money:
        return cls(currency, units * NANOS_PER_UNIT + nanos)

    @property
    def units(self) -> int:
        """Whole units, truncated toward zero (units and nanos share a sign, as google.type.Money requires)."""
        return int(self.nanos_total / NANOS_PER_UNIT) if self.nanos_total < 0 else self.nanos_total // NANOS_PER_UNIT

    @property
    def nanos(self) -> int:
        return self.nanos_total - self.units * NANOS_PER_UNIT

    def as_dict(self) -> dict[str, str | int]:
        """The stored form: currency, units, nanos (each fits a 64-bit integer, unlike nanos_total)."""
        return {"currency": self.currency, "units": self.units, "nanos": self.nanos}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Money:
        return cls.of(str(stored["currency"]), int(stored["units"]), int(stored["nanos"]))

    def times(self, quantity: int) -> Money:
        return Money(self.currency, self.nanos_total * quantity)

    def plus(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.currency, self.nanos_total + other.nanos_total)

    def __str__(self) -> str:
        sign = "-" if self.nanos_total < 0 else ""
        whole, frac = divmod(abs(self.nanos_total), NANOS_PER_UNIT)
        cents = f"{frac:09d}".rstrip("0").ljust(2, "0")
        return f"{sign}{whole}.{cents} {self.currency}"
