"""Process-wide settings, changed by assignment: ``rw.options.max_capture_bytes = 8 << 30``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass
class Options:
    #: A run whose captured tensors would exceed this many bytes fails before it allocates.
    max_capture_bytes: int = 4 << 30

    def __setattr__(self, name: str, value: Any) -> None:
        """Every option is checked when it is set; a misspelt option is an error, not a new attribute."""
        known = [f.name for f in fields(self)]
        if name not in known:
            raise AttributeError(f"rw.options has no option {name!r}; the options are: {', '.join(known)}")
        if name == "max_capture_bytes":
            value = _positive_int(value, "rw.options.max_capture_bytes", "a number of bytes, e.g. 8 << 30 for 8 GiB")
        super().__setattr__(name, value)


def _positive_int(value: Any, name: str, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int ({hint}), got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int ({hint}), got {value}")
    return int(value)


options = Options()
