"""``%load_ext repwidget``: the ``%explore`` / ``%%explore`` magics, and a ``Run`` shown as the explorer.

::

    %load_ext repwidget
    %explore the capital of france is                      # the `model` variable, else the demo model
    %explore -m gpt2 -i "[rw.Ablate(0, head=1)]" some text   # a variable, a directory or a hub id
    %%explore -m model -o ex
    a prompt over
    several lines

    run = model.run("some text")
    run                                                    # shown as the explorer of that run
"""

from __future__ import annotations

import builtins
import keyword
import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from .interventions import MODES
from .model import Model, ModelLoadError, load
from .run import Run


@magics_class
class ExploreMagics(Magics):
    """``%explore`` and ``%%explore``."""

    @magic_arguments()
    @argument("-m", "--model", default=None, help="a variable holding a model, a local directory, a hub id, or 'demo'")
    @argument("-i", "--interventions", default=None, help="a Python expression for the interventions")
    @argument("--sae", default=None, help="a variable holding an rw.SAE (or a list of them)")
    @argument("--probes", default=None, help="a variable holding rw.Probes (or a list of them)")
    @argument("--texts", default=None, help="a variable holding texts for the SAE feature dashboards")
    @argument("--mode", default="zero", choices=MODES, help="how a click ablates (default: zero)")
    @argument("-o", "--out", default=None, help="also store the explorer in this variable")
    @argument("text", nargs="*", help="the prompt (for %%explore: the cell)")
    @no_var_expand  # the prompt is taken literally: no {expression} or $variable substitution
    @line_cell_magic
    def explore(self, line: str, cell: str | None = None) -> Any:
        """Explore a model on a prompt: ``%explore [options] TEXT`` or ``%%explore [options]`` + the cell.

        Without ``-m`` the model is the notebook's ``model`` variable if it is an ``rw.Model``, else
        repwidget's shipped demo model. The prompt is taken literally (``{x}`` and ``$x`` stay as typed).
        """
        args = self.explore.parser.parse_args(_split(line))  # a bad option raises UsageError
        if args.out:
            self._check_out(args.out)
        text = cell.strip("\n") if cell is not None else " ".join(args.text)
        if not text.strip():
            raise UsageError("%explore needs a prompt: %explore the capital of france is")
        model = self._model(args.model)
        options: dict[str, Any] = {"mode": args.mode}
        if args.sae:
            options["saes"] = _as_list(self._value(args.sae, "--sae"))
        if args.probes:
            options["probes"] = _as_list(self._value(args.probes, "--probes"))
        if args.texts:
            options["texts"] = _texts(self._value(args.texts, "--texts"), args.texts)
        interventions = self._eval(args.interventions) if args.interventions else ()
        from .views import explore

        try:
            explorer = explore(model, text, interventions, **options)
        except (TypeError, ValueError, KeyError) as error:
            raise UsageError(f"%explore: {error}") from None
        if args.out:
            self.shell.user_ns[args.out] = explorer
        return explorer

    def _check_out(self, name: str) -> None:
        """``-o NAME`` must be a plain variable name that hides nothing IPython or Python rely on."""
        if not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"%explore -o {name}: not a variable name; use e.g. -o ex")
        hidden = getattr(self.shell, "user_ns_hidden", {})
        if name.startswith("_") or name in hidden or name in ("In", "Out", "get_ipython", "exit", "quit"):
            raise UsageError(f"%explore -o {name}: that name belongs to IPython; use another, e.g. -o ex")
        if hasattr(builtins, name):
            raise UsageError(f"%explore -o {name}: that would hide Python's built-in {name}; use another, e.g. -o ex")

    def _value(self, name: str, option: str) -> Any:
        if name not in self.shell.user_ns:
            raise UsageError(f"%explore {option} {name}: no variable {name!r} in this notebook")
        return self.shell.user_ns[name]

    def _eval(self, expression: str) -> Any:
        namespace = {"rw": __import__("repwidget"), **self.shell.user_ns}
        try:
            return eval(expression, namespace)  # the user's own expression, in their own kernel
        except Exception as error:
            raise UsageError(f"%explore -i {expression!r}: {type(error).__name__}: {error}") from None

    def _model(self, name: str | None) -> Model:
        if name is None:
            found = self.shell.user_ns.get("model")
            if isinstance(found, Model):
                return found
            name = "demo"
        if name == "demo":
            from .demo import demo_model

            return demo_model()
        if name in self.shell.user_ns:
            value = self.shell.user_ns[name]
            if isinstance(value, Model):
                return value
            try:
                return load(value)
            except (ModelLoadError, TypeError) as error:
                raise UsageError(f"%explore -m {name}: {error}") from None
        try:
            return load(name)
        except ModelLoadError as error:
            raise UsageError(f"%explore -m {name}: {error}") from None


def _split(line: str) -> list[str]:
    """The line's words as a shell splits them, an apostrophe inside a word ("the cat's") kept."""
    try:
        return shlex.split(re.sub(r"(?<=\w)'(?=\w)", "\\\\'", line))
    except ValueError as error:
        raise UsageError(f"%explore: {error} in {line!r}; quote the prompt") from None


def _texts(value: Any, name: str) -> list[str]:
    """``--texts``: a variable holding a list (or tuple) of strings, or one string."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        held = f"{type(value).__name__} {value!r:.30}"
        held = "a list with non-strings in it" if isinstance(value, (list, tuple)) else held
        raise UsageError(f"%explore --texts {name}: {name} holds {held}; give a variable holding a list of texts")
    return list(value)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run_as_explorer(run: Run) -> Any:
    """The mimebundle of the explorer of ``run`` (its model, tokens and interventions)."""
    from .views import explore

    return explore(run.model, run.token_ids, run.interventions)._repr_mimebundle_()


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%explore`` / ``%%explore`` and show every ``Run`` as the explorer."""
    ipython.register_magics(ExploreMagics)
    ipython.display_formatter.mimebundle_formatter.for_type(Run, run_as_explorer)


def unload_ipython_extension(ipython: Any) -> None:
    """Show ``Run`` values as text again (the magics stay until the kernel restarts)."""
    ipython.display_formatter.mimebundle_formatter.pop(Run, None)
