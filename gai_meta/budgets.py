"""Architecture budgets: limits a model must stay within, checked against its fingerprint.

A budget is a policy, not a record: it lives in ``[tool.gai-meta]`` (or on the command line),
never in the baseline, and ``gai-meta check --update`` cannot accept a broken one.
Imports no torch; FLOPs are asked for through a callable only when ``max_flops`` is set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["BUDGET_KEYS", "BudgetViolation", "Budgets", "check_budgets"]

BUDGET_KEYS = ("max_parameters", "max_size_mb", "max_flops", "output_shapes")

_MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Budgets:
    """Limits for one model; ``None`` means no limit.

    ``max_size_mb`` bounds parameters + buffers in MB of 2**20 bytes (the summary's "MB");
    ``output_shapes`` is the exact list of output shapes expected at the declared inputs.
    """

    max_parameters: int | None = None
    max_size_mb: float | None = None
    max_flops: float | None = None
    output_shapes: tuple[tuple[int, ...], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form (the cache key uses it)."""
        return {
            "max_parameters": self.max_parameters,
            "max_size_mb": self.max_size_mb,
            "max_flops": self.max_flops,
            "output_shapes": (
                None if self.output_shapes is None else [list(s) for s in self.output_shapes]
            ),
        }


@dataclasses.dataclass(frozen=True)
class BudgetViolation:
    """One broken budget: its name, the limit and the value found."""

    budget: str
    limit: Any
    value: Any

    def message(self) -> str:
        """One line naming the budget, the limit and the value."""
        if self.budget == "output_shapes":
            return (
                f"budget output_shapes broken: expected {_shapes(self.limit)}, "
                f"found {_shapes(self.value)}"
            )
        if self.budget == "max_size_mb":
            return (
                f"budget max_size_mb broken: limit {self.limit:,} MB, "
                f"value {self.value / _MIB:,.2f} MB ({self.value:,} bytes of parameters and buffers)"
            )
        return (
            f"budget {self.budget} broken: limit {_num(self.limit)}, value {_num(self.value)} "
            f"({_num(self.value - self.limit)} over)"
        )


def _num(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) or not float(x).is_integer() else f"{int(x):,}"


def _shapes(shapes: Any) -> str:
    if shapes is None:
        return "none (no input shape is known; set input_shape)"
    return "[" + ", ".join("[" + ", ".join(str(d) for d in s) + "]" for s in shapes) + "]"


def check_budgets(
    fp: Mapping[str, Any],
    budgets: Budgets,
    *,
    flops: Callable[[], int] | None = None,
) -> list[BudgetViolation]:
    """The budgets ``fp`` (a fingerprint) breaks, in :data:`BUDGET_KEYS` order.

    ``flops`` is called only when ``max_flops`` is set; it raises when FLOPs cannot be counted.

    Example::

        check_budgets(fp, Budgets(max_parameters=100))  # [BudgetViolation("max_parameters", 100, 485340)]
    """
    totals = fp["totals"]
    out: list[BudgetViolation] = []
    if budgets.max_parameters is not None and totals["parameters"] > budgets.max_parameters:
        out.append(BudgetViolation("max_parameters", budgets.max_parameters, totals["parameters"]))
    if budgets.max_size_mb is not None and totals["bytes"] > budgets.max_size_mb * _MIB:
        out.append(BudgetViolation("max_size_mb", budgets.max_size_mb, totals["bytes"]))
    if budgets.max_flops is not None:
        if flops is None:
            raise ValueError("max_flops is set but no FLOP counter was given")
        value = flops()
        if value > budgets.max_flops:
            out.append(BudgetViolation("max_flops", budgets.max_flops, value))
    if budgets.output_shapes is not None:
        expected = [list(s) for s in budgets.output_shapes]
        found = fp.get("output_shapes")
        if found != expected:
            out.append(BudgetViolation("output_shapes", expected, found))
    return out
