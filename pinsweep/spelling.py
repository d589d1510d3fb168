"""One spelling per value, as a user types it on the command line: `true`, `2`, `null`.

Rows read back from CSV hold numpy bools, floats for integers and NaN for nothing; Optuna writes `True`.
Every place that compares, groups or prints a setting's value (the summary's axes, the report, the
advice's commands, the auto-tune's plan) spells it through `norm`, so `2.0`, `2` and `"2"` are one level.
Below every layer: it imports nothing of pinsweep.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def norm(value: Any) -> str:
    """One spelling per value, as a user types it on the command line (true, 2, null)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)
