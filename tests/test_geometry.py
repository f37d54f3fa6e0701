"""Representational similarity checked against direct implementations of the published formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import repwidget as rw
from repwidget.analyses import layer_similarity, similarity

from conftest import ids, word_tokenizer


def _hsic_biased(k: np.ndarray, m: np.ndarray) -> float:
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ m @ h)) / (n - 1) ** 2


def _hsic_unbiased(k: np.ndarray, m: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, term by term."""
    n = len(k)
    kt, mt = k.copy(), m.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(mt, 0)
    one = np.ones(n)
    return (
        np.trace(kt @ mt)
        + (one @ kt @ one) * (one @ mt @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ kt @ mt @ one)
    ) / (n * (n - 3))


def _cka(x: np.ndarray, y: np.ndarray, hsic) -> float:
    k, m = x @ x.T, y @ y.T
    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


def _mknn(x: np.ndarray, y: np.ndarray, k: int) -> float:
    def neighbours(z):
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        out = []
        for i in range(len(z)):
            order = [j for j in np.argsort(-(z @ z[i]), kind="stable") if j != i]
            out.append(set(order[:k]))
        return out

    na, nb = neighbours(x), neighbours(y)
    return float(np.mean([len(a & b) / k for a, b in zip(na, nb, strict=True)]))


def _svcca(x: np.ndarray, y: np.ndarray, variance: float) -> float:
    """SVD-reduce each side, then canonical correlations as square roots of the eigenvalues of
    Saa^-1 Sab Sbb^-1 Sba (the textbook CCA, not an orthonormal-basis shortcut)."""

    def reduce(z):
        z = z - z.mean(0)
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        keep = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), variance - 1e-12)) + 1
        return z @ vt[:keep].T

    a, b = reduce(x), reduce(y)
    saa, sbb, sab = a.T @ a, b.T @ b, a.T @ b
    eig = np.linalg.eigvals(np.linalg.solve(saa, sab) @ np.linalg.solve(sbb, sab.T))
    rho = np.sqrt(np.clip(np.sort(eig.real)[::-1][: min(a.shape[1], b.shape[1])], 0, 1))
    return float(rho.mean())


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12))
    y = x @ rng.normal(size=(12, 9)) + 0.5 * rng.normal(size=(40, 9))  # related, other width
    return x, y


def test_cka_matches_hsic_formulas(pair):
    x, y = pair
    assert similarity(x, y, "cka", debiased=False) == pytest.approx(_cka(x, y, _hsic_biased), abs=1e-10)
    assert similarity(x, y, "cka") == pytest.approx(_cka(x, y, _hsic_unbiased), abs=1e-10)
    assert 0.3 < similarity(x, y) < 0.99


def test_mknn_and_svcca_match_direct_implementations(pair):
    x, y = pair
    for k in (1, 5):
        assert similarity(x, y, "mknn", k=k) == pytest.approx(_mknn(x, y, k), abs=1e-12)
    for variance in (0.9, 0.99, 1.0):
        assert similarity(x, y, "svcca", variance=variance) == pytest.approx(_svcca(x, y, variance), abs=1e-8)


def test_known_cases():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    for method in ("cka", "mknn", "svcca"):
        assert similarity(x, x, method) == pytest.approx(1, abs=1e-9), method
    for method in ("cka", "svcca"):
        assert similarity(x, x @ q, method) == pytest.approx(1, abs=1e-9), method  # rotated
    assert similarity(x, 3 * x @ q, "mknn") == pytest.approx(1, abs=1e-12)  # cosine neighbours: rotation, scale
    # unrelated: debiased CKA about 0, the biased estimate well above it with this few samples
    noise = [similarity(rng.normal(size=(30, 200)), rng.normal(size=(30, 200))) for _ in range(20)]
    biased = similarity(rng.normal(size=(30, 200)), rng.normal(size=(30, 200)), debiased=False)
    assert abs(np.mean(noise)) < 0.02 and biased > 0.5
    # float32 activations (products in float32, centring and the rest in float64) agree with float64
    y = x @ rng.normal(size=(16, 16)) + rng.normal(size=(60, 16))
    for method in ("cka", "mknn", "svcca"):
        low = similarity(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), method)
        assert low == pytest.approx(similarity(x, y, method), abs=1e-5), method
    # torch tensors and numpy arrays are the same
    assert similarity(torch.tensor(x), x @ q) == pytest.approx(similarity(x, x @ q))


def test_errors_are_one_line():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="same samples"):
        similarity(x, np.zeros((9, 3)))
    with pytest.raises(ValueError, match="method must be one of cka, mknn, svcca"):
        similarity(x, x, "rsa")
    with pytest.raises(ValueError, match=r"\[samples, width\]"):
        similarity(np.zeros(10), x)
    with pytest.raises(ValueError, match="at least 11 samples"):
        similarity(x, x, "mknn", k=10)
    with pytest.raises(ValueError, match="NaN"):
        similarity(x + np.nan, x)


def _model(seed, width=32, layers=4):
    import transformers as T

    torch.manual_seed(seed)
    config = T.GPT2Config(n_layer=layers, n_head=4, n_embd=width, vocab_size=64, n_positions=48)
    return rw.load(T.GPT2LMHeadModel(config).eval(), tokenizer=word_tokenizer())


def test_layer_similarity_reads_each_layer():
    model = _model(0)
    texts = [ids(n, seed=n) for n in (6, 9, 12, 7)]
    got = layer_similarity(model, texts)
    assert got.shape == (4, 4)
    torch.testing.assert_close(got, got.T)
    torch.testing.assert_close(got.diagonal(), torch.ones(4, dtype=got.dtype))
    # by hand: each text alone, every token after <bos>, texts in order
    runs = [model.run(t) for t in texts]
    acts = [torch.cat([r[f"blocks.{layer}.hook_resid_post"][1:] for r in runs]) for layer in range(4)]
    assert float(got[0, 3]) == pytest.approx(similarity(acts[0], acts[3]), abs=1e-5)
    svcca = layer_similarity(model, texts, method="svcca", hook="mlp_out")
    mlp = [torch.cat([r.model.run(t, capture="blocks.*.hook_mlp_out")[f"blocks.{layer}.hook_mlp_out"][1:]
                      for r, t in zip(runs, texts, strict=True)]) for layer in range(4)]  # fmt: skip
    assert float(svcca[1, 2]) == pytest.approx(similarity(mlp[1], mlp[2], "svcca"), abs=1e-5)


def test_layer_similarity_across_models_of_other_widths():
    a, b = _model(0), _model(1, width=48, layers=3)
    texts = [ids(n, seed=n) for n in (6, 9, 12, 7)]
    got = layer_similarity(a, texts, other_model=b)
    assert got.shape == (4, 3)
    same = layer_similarity(a, texts, other_model=a)
    torch.testing.assert_close(same, layer_similarity(a, texts))
    by_text = layer_similarity(a, texts * 3, other_model=b, unit="text", method="mknn", k=3)
    assert by_text.shape == (4, 3)
    with pytest.raises(ValueError, match='unit must be "token" or "text"'):
        layer_similarity(a, texts, unit="word")
