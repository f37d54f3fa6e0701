"""Interventions: small frozen values that serialise to JSON and print as the Python that rebuilds them.

``base.py`` holds :class:`Intervention`, the registry and the shared checks; ``edits.py`` the effects a pass
applies (the edit primitives, :class:`ScoreMask`, :class:`Bypass`); one module per kind; ``json.py`` the codec.
"""

from .base import MODES, Intervention, as_tuple, kinds
from .edits import ActivationEdit, AddRows, Bypass, Edit, Project, ScoreMask, SetRows, Splice

# the kinds, in the order ``kinds()`` lists them (registered on import)
from .ablate import Ablate  # isort: skip
from .steer import Steer  # isort: skip
from .patch import Patch  # isort: skip
from .knockout import Knockout  # isort: skip
from .skip import Skip  # isort: skip
from .replace import Replace  # isort: skip
from .json import from_json, to_json  # isort: skip

__all__ = [
    "MODES",
    "Ablate",
    "ActivationEdit",
    "AddRows",
    "Bypass",
    "Edit",
    "Intervention",
    "Knockout",
    "Patch",
    "Project",
    "Replace",
    "ScoreMask",
    "SetRows",
    "Skip",
    "Splice",
    "Steer",
    "as_tuple",
    "from_json",
    "kinds",
    "to_json",
]
