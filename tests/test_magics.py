"""``%load_ext repwidget``: the ``%explore`` magics and ``Run`` values displayed as the explorer."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import repwidget as rw

WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "repwidget")
    yield shell
    shell.run_line_magic("unload_ext", "repwidget")


@pytest.fixture
def ns(ip):
    """A clean namespace for each test (the magics read `model` and other variables from it)."""
    saved = dict(ip.user_ns)
    yield ip.user_ns
    ip.user_ns.clear()
    ip.user_ns.update(saved)


def test_line_magic_explores_the_notebooks_model(ip, ns, demo):
    model = demo
    ns["model"] = model
    ex = ip.run_line_magic("explore", "-o saved -i '[rw.Ablate(1, head=2)]' the capital of france is")
    assert isinstance(ex, rw.Explorer) and ex.model is model and ns["saved"] is ex
    assert ex.run.tokens == ["<bos>", "the", "capital", "of", "france", "is"]
    assert ex.interventions == [rw.Ablate(1, head=2)]
    assert ex.mode == "zero"


def test_without_a_model_variable_the_demo_model_is_used(ip, ns, demo):
    ns.pop("model", None)
    ex = ip.run_line_magic("explore", "--mode mean two days after monday is")
    assert ex.model.n_layers == demo.n_layers and ex.mode == "mean"
    assert ex.run.tokens[-1] == "is"


def test_cell_magic_takes_the_cell_as_the_prompt(ip, ns, demo):
    ns["small"] = demo
    sae = rw.demo.demo_sae()
    ns["sae"] = sae
    ex = ip.run_cell_magic("explore", "-m small --sae sae", "one two three\none two three\n")
    assert ex.model is ns["small"] and ex.saes[0]["name"] == sae.name
    assert "features" in ex.views
    assert ex.run.token_ids == ns["small"].to_ids("one two three\none two three")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "needs a prompt"),
        ("-m missing_variable_or_model hello", "could not reach the Hugging Face hub"),
        ("-m ./no/such/dir hello", "no such directory"),
        ("--mode sideways hello", "invalid choice"),
        ("-i 'undefined_name' hello", "NameError"),
        ("-i '[1, 2]' hello", "not an intervention"),
        ("--sae nothing hello", "no variable 'nothing'"),
        ("--sae model hello", "saes must be rw.SAE"),
        ("'unbalanced hello", "quote the prompt"),
        ("--bogus hello", "unrecognized arguments"),
    ],
)
def test_bad_input_is_a_usage_error_that_says_what(ip, ns, line, message, demo):
    ns["model"] = demo
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("explore", line)


def test_a_run_is_displayed_as_its_explorer(ip, ns, demo):
    import ipywidgets

    model = demo
    run = model.run("one two three one two", interventions=[rw.Ablate(0, head=0)])
    data, _ = ip.display_formatter.format(run)
    widget = ipywidgets.Widget.widgets[data[WIDGET]["model_id"]]
    assert isinstance(widget, rw.Explorer)
    assert widget.run.token_ids == run.token_ids and widget.interventions == [rw.Ablate(0, head=0)]
    assert widget.run.logits.equal(run.logits)
    ip.run_line_magic("unload_ext", "repwidget")
    try:
        data, _ = ip.display_formatter.format(run)
        assert WIDGET not in data and "text/plain" in data
    finally:
        ip.run_line_magic("load_ext", "repwidget")


# -- issue 13: literal prompts, -o that hides nothing, pickles and meta models as usage errors --


def test_the_prompt_is_taken_literally(ip, ns, demo):
    ns.update(model=demo, day="monday", calls=[])
    ns["note"] = lambda: ns["calls"].append(1) or "monday"
    for prompt in ("the day after {day} is", "the day after $day is", "the day after {note()} is"):
        ex = ip.run_line_magic("explore", prompt)
        assert ex.run.token_ids == demo.to_ids(prompt) != demo.to_ids("the day after monday is"), prompt
    ex = ip.run_cell_magic("explore", "-o ex", "the day after {day} is\n")
    assert ex.run.token_ids == demo.to_ids("the day after {day} is")
    assert ns["calls"] == [], "an expression in the prompt was evaluated"


@pytest.mark.parametrize(
    "name", ["get_ipython", "exit", "quit", "In", "Out", "_", "_ih", "__builtins__", "_private", "print", "len",
             "class", "not-a-name", "1x", "a.b"],
)  # fmt: skip
def test_out_refuses_names_that_would_hide_ipythons_or_pythons(ip, ns, name, demo):
    ns["model"] = demo
    before = {key: ns.get(key) for key in ("get_ipython", "exit", "In", "Out", "_", name)}
    with pytest.raises(UsageError, match=r"%explore -o .*(belongs to IPython|built-in|not a variable name)"):
        ip.run_line_magic("explore", f"-o '{name}' one two")
    assert all(ns.get(key) is value for key, value in before.items())


def test_out_takes_an_ordinary_name(ip, ns, demo):
    ns["model"] = demo
    ex = ip.run_line_magic("explore", "-o my_view one two")
    assert ns["my_view"] is ex


class _Planted:
    """Unpickling this writes a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.write_text, (Path(self.marker), "code ran"))


def test_pickles_and_meta_models_are_usage_errors(ip, ns, tmp_path):
    import torch
    import transformers as T

    config = T.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=32)
    config.save_pretrained(tmp_path / "m")
    torch.save({"transformer.wte.weight": _Planted(str(tmp_path / "ran.txt"))}, tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(UsageError, match=r"%explore -m .*never unpickles objects"):
        ip.run_line_magic("explore", f"-m {tmp_path / 'm'} one two")
    assert not (tmp_path / "ran.txt").exists()
    with torch.device("meta"):
        ns["empty"] = T.GPT2LMHeadModel(config)
    with pytest.raises(UsageError, match=r"%explore -m empty: .*meta device"):
        ip.run_line_magic("explore", "-m empty one two")


def test_explore_texts_given_a_number(ip, ns, demo):
    """Was a TypeError ('int' object is not iterable); a string variable was split into characters (issue 28)."""
    ns.update(model=demo, n=5, words="the cat sat", mixed=["the cat", 3])
    with pytest.raises(UsageError, match=r"%explore --texts n: n holds int 5; give a variable holding a list"):
        ip.run_line_magic("explore", "--texts n the cat")
    with pytest.raises(UsageError, match=r"--texts 5: no variable '5'"):
        ip.run_line_magic("explore", "--texts 5 the cat")
    with pytest.raises(UsageError, match=r"mixed holds a list with non-strings in it"):
        ip.run_line_magic("explore", "--texts mixed the cat")
    explorer = ip.run_line_magic("explore", "--texts words the cat")
    assert explorer.session.texts == ["the cat sat"]
