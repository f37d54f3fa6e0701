"""``ex.code()``: the Python that rebuilds what a session shows (the run, then each view's own lines)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model.model import Model
    from .session import Session


def rebuild(session: Session) -> str:
    """Python that rebuilds the current run (and so what the views show). An SAE that was never saved
    (so cannot be loaded) appears as ``unsaved("name")``, which raises an error saying what to do."""
    ivs = ", ".join(repr(iv) for iv in session.interventions)
    preamble = ""
    for sae in {id(iv.sae): iv.sae for iv in session.interventions if getattr(iv, "sae", None) is not None}.values():
        if sae.path is None:
            ivs = ivs.replace(repr(sae), f"unsaved({sae.name!r})")
            preamble = UNSAVED
    text = session.text if session.text is not None else session.run.token_ids
    given = f"messages={session.messages!r}" if session.messages is not None else repr(text)
    source = _model_source(session.model)
    lines = [f"run = model.run({given}, interventions=[{ivs}])"]
    for p in session.panels:
        lines += p.code(session)
    body = "\n".join(lines)
    return f"import repwidget as rw\n{preamble}\nmodel = {source}\n{body}\n"


UNSAVED = """

def unsaved(name):  # an SAE that was never saved: sae.save("dir") in the notebook, then rw.SAE.load("dir") here
    raise RuntimeError(f"the SAE {name!r} was never saved: call sae.save('dir'), then use rw.SAE.load('dir') here")
"""


def _model_source(model: Model) -> str:
    name = getattr(model, "source", None)
    if name == "demo":
        return "rw.demo_model()"
    if name:
        return f"rw.load({name!r})"
    return "rw.Model(hf_model, tokenizer)  # the model you passed to rw.explore"
