"""Process-wide settings, changed by assignment: ``rw.options.max_capture_bytes = 8 << 30``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Options:
    #: A run whose captured tensors would exceed this many bytes fails before it allocates.
    max_capture_bytes: int = 4 << 30


options = Options()
