"""How a person reads a number or a config, one spelling everywhere: the terminal, the report and its advice.

`1.80x [1.60, 2.00]` for a ratio and its interval, `1800 [1700, 1900]` for images/s,
`num_workers=2, pin_memory=false` for a config, as it is typed on the command line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pinsweep.record import CONFIG_GROUPS
from pinsweep.summarize import _short


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def interval(low: Any, high: Any) -> str:
    return "" if missing(low) or missing(high) else f" [{low:.2f}, {high:.2f}]"


def ips(value: float, low: Any = math.nan, high: Any = math.nan) -> str:
    ci = "" if missing(low) or missing(high) else f" [{low:.0f}, {high:.0f}]"
    return f"{value:.0f}{ci}"


def axes_of(summary: pd.DataFrame) -> list[str]:
    """The swept axes: summary columns named after a config group, in summary order."""
    return [c for c in summary.columns if c.split(".", 1)[0] in CONFIG_GROUPS]


def config_label(record: pd.Series, axes: list[str]) -> str:
    """`num_workers=2, pin_memory=false`, as typed on the command line."""
    return ", ".join(f"{_short(a, axes)}={record[a]}" for a in axes) or "the single config"


def claim_label(record: pd.Series, axes: list[str], inactive: list[str]) -> str:
    """config_label without the axes that cannot act here: on a CPU, `num_workers=2`, never
    `num_workers=2, pin_memory=true`, which would credit pin_memory with a speed it cannot have."""
    active = [a for a in axes if a not in inactive]
    return config_label(record, active) if active else "every config"
