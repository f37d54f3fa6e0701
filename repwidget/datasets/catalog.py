"""The probing tasks shipped by the ``sae-probes`` package (binary, multiclass and continuous; some with an
out-of-distribution variant), read straight from its zstd CSV files."""

from __future__ import annotations

import difflib
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from .dataset import Dataset, count_rows, normalise_labels, read_bytes, read_rows

INSTALL = "pip install --no-deps sae-probes zstandard"
_KIND = {"Binary Classification": "binary", "Multiclass Classification": "multiclass", "Continuous Data": "continuous"}


@dataclass(frozen=True)
class Task:
    """One task of the catalogue: ``name`` for :func:`load`, ``kind``, ``size`` (examples) and ``has_ood``."""

    name: str
    kind: str
    size: int
    has_ood: bool
    number: int = field(repr=False)
    file: Path = field(repr=False)
    ood_file: Path | None = field(repr=False)


def data_dir() -> Path:
    """The ``data`` folder of the installed ``sae-probes`` package (found without importing it: its modules
    import sae-lens and transformer-lens)."""
    spec = importlib.util.find_spec("sae_probes")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "data"
        if (path / "probing_datasets_MASTER.csv.zst").is_file():
            return path
    raise ModuleNotFoundError(f"rw.datasets reads its tasks from the sae-probes package: {INSTALL}")


@functools.cache
def _catalogue() -> dict[str, Task]:
    data = data_dir()
    tasks = {}
    for row in read_rows(data / "probing_datasets_MASTER.csv.zst"):
        saved, kind = row.get("Dataset save name", ""), _KIND.get(row.get("Data type", ""))
        file = data / f"{saved}.zst"
        if not saved or kind is None or not file.is_file():
            continue
        stem = file.name.removesuffix(".csv.zst")
        number, _, name = stem.partition("_")
        ood = data / "OOD data" / f"{stem}_OOD.csv.zst"
        size = count_rows(read_bytes(file))
        tasks[name] = Task(name, kind, size, ood.is_file(), int(number), file, ood if ood.is_file() else None)
    return dict(sorted(tasks.items(), key=lambda item: item[1].number))


def tasks(kind: str | None = None) -> list[Task]:
    """The catalogue's tasks (``kind``: only ``binary``, ``multiclass`` or ``continuous`` ones), in the
    package's numbering. The first call decompresses every file to count its rows (about two seconds)."""
    found = list(_catalogue().values())
    if kind is None:
        return found
    kinds = sorted({task.kind for task in found})
    if kind not in kinds:
        raise ValueError(f"kind must be one of {', '.join(kinds)}, got {kind!r:.40}")
    return [task for task in found if task.kind == kind]


def find(name: str) -> Task:
    """The task called ``name`` (``glue_sst2``; the numbered file name ``92_glue_sst2`` works too)."""
    if not isinstance(name, str):
        raise TypeError(f"a task name is a string such as 'glue_sst2', got {type(name).__name__}")
    catalogue = _catalogue()
    if name in catalogue:
        return catalogue[name]
    number, _, rest = name.partition("_")
    if number.isdigit() and rest in catalogue and catalogue[rest].number == int(number):
        return catalogue[rest]
    close = difflib.get_close_matches(name, list(catalogue), n=5, cutoff=0.5)
    close += [task for task in catalogue if name.lower() in task and task not in close][: 5 - len(close)]
    hint = f"close names: {', '.join(close)}" if close else "rw.datasets.list() lists them"
    raise ValueError(f"no task called {name!r:.60} among the {len(catalogue)} of sae-probes; {hint}")


def load(name: str) -> Dataset:
    """The task ``name`` as a :class:`Dataset`: its texts (``prompt``), labels (``target``: class names, or
    numbers for a continuous task) and, where sae-probes ships one, the out-of-distribution variant as
    ``.ood``. An OOD file whose two labels are spelt differently (glue_qnli's ``not_entailment``) is
    mapped to the task's labels in sorted order, as sae-probes' own label encoding does."""
    task = find(name)
    rows = read_rows(task.file)
    labels = normalise_labels([row["target"] for row in rows], task.kind, task.file.name)
    ood = _ood(task, sorted(set(labels))) if task.ood_file is not None else None
    return Dataset(task.name, [row["prompt"] for row in rows], labels, task.kind, None, ood)


def _ood(task: Task, classes: list) -> Dataset:
    assert task.ood_file is not None
    rows = read_rows(task.ood_file)
    labels = normalise_labels([row["target"] for row in rows], task.kind, task.ood_file.name)
    own = sorted(set(labels))
    if task.kind != "continuous" and not set(own) <= set(classes):
        if len(own) != len(classes):
            raise ValueError(f"{task.ood_file.name}: labels {own} do not match the task's {classes}")
        labels = [classes[own.index(label)] for label in labels]
    return Dataset(f"{task.name} (ood)", [row["prompt"] for row in rows], labels, task.kind)
