"""Labelled tasks for probes at dataset scale: the 155 probing tasks of ``sae-probes`` (binary, multiclass,
continuous; some with out-of-distribution variants), any CSV file and any list of ``(text, label)``.

``rw.datasets.list()`` names the tasks, ``rw.datasets.load("glue_sst2")`` reads one as a :class:`Dataset`,
``dataset.split(test=0.2, seed=0)`` holds out a seeded part (whole groups, if the dataset has them).
"""

from .catalog import INSTALL, Task, find, load
from .catalog import tasks as list  # rw.datasets.list(), as the issue names it
from .dataset import KINDS, Dataset, from_csv, from_pairs
from .split import held_out

__all__ = ["INSTALL", "KINDS", "Dataset", "Task", "find", "from_csv", "from_pairs", "held_out", "list", "load"]
