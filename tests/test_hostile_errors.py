"""Clear errors instead of raw ones (issue 28, item 9): each bad input is one actionable line, not an IndexError,
a "does not require grad", nan probabilities, an AttributeError or a TypeError from deep inside (``%explore
--texts`` given a number: tests/test_magics.py)."""

from __future__ import annotations

import json

import pytest
import torch

import repwidget as rw
from repwidget.file_checks import FileFormatError

CLEAN = "when mary and john went to the store , john gave a drink to"
CORRUPTED = "when mary and john went to the store , mary gave a drink to"


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_metric_position_outside_the_prompt(demo):
    """Was an IndexError from the logits (15 tokens here)."""
    run = demo.run(CLEAN, capture=[])
    metric = rw.patching.logit_diff(demo, 5, 7, position=40)
    with pytest.raises(ValueError, match=r"position 40 is outside the 15 tokens of this prompt") as error:
        metric(run)
    _one_line(error)
    with pytest.raises(ValueError, match="position 40 is outside"):
        rw.patching.measure(metric, [run])
    with pytest.raises(ValueError, match="position -16 is outside"):
        rw.patching.sweep(demo, CLEAN, CORRUPTED, rw.patching.logit_diff(demo, "mary", "john", position=-16))


@pytest.mark.parametrize("of_logits", [lambda logits: torch.tensor(1.0), lambda logits: 2.5])
def test_attribution_patching_with_a_metric_that_does_not_depend_on_the_logits(demo, of_logits):
    """Was torch's "element 0 of tensors does not require grad and does not have a grad_fn"."""
    metric = rw.patching.Metric("constant", of_logits)
    with pytest.raises(ValueError, match=r"gradient of the metric \(constant\) .* does not depend on them") as e:
        rw.patching.sweep(demo, CLEAN, CORRUPTED, metric, site="heads", method="attribution")
    assert "method='exact'" in _one_line(e)


@pytest.mark.parametrize("temperature", [1e-300, 1e-9])
def test_a_temperature_too_small_to_sample_at(demo, temperature):
    """Was inf logits and nan probabilities (or a sample that is not the greedy token)."""
    with pytest.raises(ValueError, match=r"temperature must be 0 \(greedy\) or at least 1e-06") as error:
        demo.generate(CLEAN, max_new_tokens=2, temperature=temperature)
    _one_line(error)
    assert len(demo.generate(CLEAN, max_new_tokens=2, temperature=1e-6, seed=0).token_ids) > 0


@pytest.mark.parametrize(
    "training, field",
    [
        ("yes", "metadata.training must be an object"),
        ([1, 2], "metadata.training must be an object"),
        ({"stats": [0.9]}, "metadata.training.stats must be an object"),
        ({"stats": {"explained_variance": "high"}}, "metadata.training.stats.explained_variance must be a finite"),
    ],
)
def test_an_sae_file_whose_training_metadata_has_the_wrong_type(tmp_path, training, field):
    """Was an AttributeError ('str' object has no attribute 'get') or a ValueError from dict()."""
    rw.demo.demo_sae().save(tmp_path / "sae")
    config = tmp_path / "sae" / "cfg.json"
    cfg = json.loads(config.read_text())
    cfg["metadata"] = {**cfg.get("metadata", {}), "training": training}
    config.write_text(json.dumps(cfg))
    with pytest.raises(FileFormatError, match=field) as error:
        rw.SAE.load(tmp_path / "sae")
    assert "cfg.json" in _one_line(error)


def test_save_html_with_a_title_that_is_not_a_string(demo, tmp_path):
    """Was an AttributeError from html.escape."""
    explorer = rw.explore(demo, CLEAN)
    with pytest.raises(TypeError, match=r"title must be a string \(the page's title\), got int 123") as error:
        explorer.save_html(tmp_path / "page.html", title=123)
    _one_line(error)
    assert not (tmp_path / "page.html").exists()
