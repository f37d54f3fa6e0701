"""A view's kernel side is one module, ``views/panels/<name>.py``: it declares its options, state, selection keys,
code lines and place, the tables and the session are built from the panels found, and nothing else names it."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import repwidget as rw
from repwidget.views import catalog
from repwidget.views.panels import PANELS, discover

ROOT = Path(rw.__file__).resolve().parent
JS = ROOT.parent / "js" / "src"


@pytest.fixture(scope="module")
def demo():
    return rw.demo_model()


def test_the_tables_are_built_from_the_panels_found_in_their_order():
    assert list(PANELS) == list(catalog.VIEWS) == sorted(PANELS, key=lambda name: PANELS[name].order)
    assert tuple(catalog.panels_of("text"))[:3] == ("interventions", "tokens", "attention")  # the layout order
    # an image classifier's sessions have the image views (the interventions list serves every kind)
    assert tuple(catalog.panels_of("cnn")) == ("interventions", "image", "classes", "feature_maps", "saliency")
    vit = ("interventions", "image", "classes", "class_lens", "vit_attention", "saliency")
    assert tuple(catalog.panels_of("vit")) == vit
    assert {name: p.name for name, p in catalog.OPTIONS.items()} == {
        "examples": "neurons",
        "transcoders": "graph",
        "graph": "graph",
        "tuned_lens": "lens",
        "points": "projector",
        "projection": "projector",
        "continuation": "continuation",
        "corrupted": "patching",
    }
    keys = ("token", "layer", "head_layer", "head", "neuron", "sae", "feature", "graph_node", "graph_logit")
    keys += ("graph_group", "graph_groups", "lens_kind", "tokens", "points")
    image = ("channel", "vit_head", "query", "saliency_class", "saliency_method")
    assert (*keys, *image) == tuple(sorted(catalog.SELECTION_KEYS, key=lambda k: k in image))
    assert tuple(catalog.keys_of("text")) == keys
    assert tuple(catalog.keys_of("cnn")) == ("token", "layer", "channel", "saliency_class", "saliency_method")
    assert tuple(catalog.keys_of("vit")) == ("token", "layer", "vit_head", "query", "saliency_class", "saliency_method")
    assert discover() == PANELS  # found again, the same


def test_the_kernel_says_where_each_view_sits_and_what_rides_along_with_a_command(demo):
    ex = rw.explore(demo, "the capital of france is", continuation=True)
    places = ex.shape["places"]
    assert [v for v in ex.views if places[v] == "top"] == ["interventions", "tokens", "continuation"]
    assert [v for v in ex.views if places[v] == "side"] == ["lens", "predictions", "attribution"]
    assert places["attention"] == places["neurons"] == "main"
    assert ex.shape["then"] == {"what": "predictions", "position": "token"}
    assert "then" not in rw.TokensView(demo.run("the capital")).shape  # no predictions view: nothing rides along
    # the projector, asked for with points=, goes in the side column under the predictions (not last in the main one)
    px = rw.explore(demo, "the capital of france is", points=["a fine day ."])
    side = [v for v in px.views if px.shape["places"][v] == "side"]
    assert side == ["lens", "predictions", "projector", "attribution"]


def test_unknown_options_are_refused_naming_every_views_options(demo):
    with pytest.raises(TypeError, match=r"\['corupted'\].*projector: points, projection.*patching: corrupted"):
        rw.explore(demo, "the capital of france is", corupted="the capital of spain is")
    assert "``corrupted=" in rw.explore.__doc__ and "``projection=" in rw.explore.__doc__
    assert rw.explore(demo, "the capital", layout={"width": "300px"}).layout.width == "300px"  # the widget's own


def test_the_panels_state_lives_on_the_session_by_panel(demo):
    ex = rw.explore(demo, "the capital of france is")
    state = ex.session.state
    assert set(state) == set(catalog.panels_of("text"))
    assert state["patching"].corrupted is None and state["projector"] is None
    assert state["continuation"].wanted is False and state["attribution"].picked is None
    assert not any(hasattr(ex.session, name) for name in ("points", "corrupted", "sweeps", "picked", "streams"))


def test_no_module_outside_a_views_own_files_imports_it():
    """A panel module is imported only by discovery; a view's TS module only through the generated views module."""
    py = [p for p in ROOT.rglob("*.py") if "static" not in p.parts]
    ts = list(JS.rglob("*.ts"))
    for name in PANELS:
        own_py = {ROOT / "views" / "panels" / f"{name}.py", *ROOT.glob(f"views/panels/_{name}*.py")}
        pattern = re.compile(rf"panels(\.|\s+import\s+(\([^)]*|[^\n]*))\b{name}\b")
        naming = [str(p) for p in py if p not in own_py and pattern.search(p.read_text())]
        assert naming == [], f"{name} is imported outside its panel module by {naming}"
        importing = [str(p) for p in ts if p != JS / "views" / f"{name}.ts" and f"views/{name}" in p.read_text()]
        assert importing == [], f"{name} is imported outside its view module by {importing}"


THROWAWAY = '''
"""A throwaway view, to show that a panel module is all the kernel needs."""

from ..panel import Key, Option, Panel, Request


def answer(session, args):
    return {"echo": session.state["throwaway"]["word"], "mark": args.get("mark")}


PANEL = Panel(
    name="throwaway",
    place="side",
    order=55,
    options={"word": Option(None, "``word=...`` adds the throwaway view.")},
    state=lambda session, options: {"word": options["word"]},
    shown=lambda session: session.state["throwaway"]["word"] is not None,
    selection={"mark": Key(lambda s: None, lambda s, out, given: out["mark"])},
    code=lambda session: [f"# throwaway {session.state['throwaway']['word']}"],
    requests=(Request("throwaway", (), answer),),
)
'''

CHECK = """
import repwidget as rw
from repwidget.views.session import Session

assert rw.__file__.startswith(TMP), rw.__file__
demo = rw.demo_model()
ex = rw.explore(demo, "the capital of france is", word="hi")
assert ex.views.index("throwaway") == ex.views.index("features" if "features" in ex.views else "neurons") + 1, ex.views
assert ex.shape["places"]["throwaway"] == "side"
assert ex.selection["mark"] is None
ex.select(mark=3)
assert ex.selection["mark"] == 3
reply = ex.session.handle({"type": "get", "id": 1, "what": "throwaway"})[0][0]
assert reply["data"]["echo"] == "hi", reply
assert "# throwaway hi" in ex.code()
assert "``word=...``" in rw.explore.__doc__
assert "throwaway" not in rw.explore(demo, "the capital of france is").views
try:
    rw.explore(demo, "the capital", wrod="hi")
except TypeError as error:
    assert "throwaway: word" in str(error), error
else:
    raise AssertionError("an unknown option was taken")
print("ok")
"""


def test_a_view_added_as_one_panel_module_is_served_with_nothing_else_edited(tmp_path):
    """A copy of the package with one more module in ``views/panels/``: the explorer takes its option, lays it out,
    answers its requests, checks its selection key and writes its code line."""
    package = tmp_path / "repwidget"
    package.mkdir()
    for child in ROOT.iterdir():
        if child.name == "views":
            shutil.copytree(child, package / "views", ignore=shutil.ignore_patterns("__pycache__"))
        elif child.name != "__pycache__":
            (package / child.name).symlink_to(child)
    (package / "views" / "panels" / "throwaway.py").write_text(textwrap.dedent(THROWAWAY))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    script = f"TMP = {str(tmp_path)!r}\n" + CHECK
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
