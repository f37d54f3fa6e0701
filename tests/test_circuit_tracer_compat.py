"""The same transcoders give the same attribution graph in repwidget as in circuit-tracer 0.5 (issue 30).

circuit-tracer runs in its own venv (``.venv-ct``, made by ``scripts/setup_circuit_tracer.sh``: it pins transformers
<= 4.57.3 and nnsight < 0.8) through ``bench/circuit_tracer_graph.py``; without that venv these tests skip (locally)
or fail (under ``CI``, whose ``scripts/setup.sh --test`` makes it). The model is a tiny random-init Llama (an
architecture circuit-tracer's nnsight backend maps; the demo model is GPT-2, which it does not) with the demo model's
word-level tokenizer, saved as a local Hugging Face directory; the transcoders JumpReLU with a skip connection,
saved in circuit-tracer's layout by ``repwidget.transcoders.files.save``. Nodes are matched by what they are
((layer, position, feature), (layer, position), (position, token), logit token), not by their order."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

import repwidget as rw
from repwidget.transcoders.files import save

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "circuit_tracer_graph.py"
PROMPT = "the cat and the dog and the cat and the"
MAX_FEATURES, BATCH = 100, 16


def venv_ct_python() -> Path:
    """``.venv-ct``'s python (``REPWIDGET_VENV_CT`` names another venv); skip (locally) or fail (CI) without it."""
    venv = Path(os.environ.get("REPWIDGET_VENV_CT", ROOT / ".venv-ct"))
    python = venv / "bin" / "python"
    if not python.is_file():
        message = f"circuit-tracer's venv {venv} is absent: bash scripts/setup_circuit_tracer.sh makes it"
        if os.environ.get("CI"):
            raise RuntimeError(message)
        pytest.skip(message)
    return python


def tiny_llama_dir(path: Path) -> Path:
    """A 2-layer random Llama with the demo tokenizer, as a local HF directory both transformers 4 and 5 load."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=276, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=1, pad_token_id=0,
        initializer_range=0.2, tie_word_embeddings=False,
    )  # fmt: skip
    with torch.random.fork_rng():  # the same weights every time, the other tests' random state untouched
        torch.manual_seed(0)
        LlamaForCausalLM(config).eval().save_pretrained(path)
    demo = Path(rw.demo.__file__).parent / "model"
    (path / "tokenizer.json").write_bytes((demo / "tokenizer.json").read_bytes())
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "pad_token": "<pad>",
                        "unk_token": "<unk>", "model_max_length": 64}  # fmt: skip
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return path


def jumprelu_skip_transcoders(model: rw.Model, d_tc: int = 32) -> rw.TranscoderSet:
    g, d = torch.Generator().manual_seed(1), model.d_model
    coders = []
    for layer in range(model.n_layers):
        w_enc, w_dec = torch.randn(d_tc, d, generator=g) / d**0.5, torch.randn(d_tc, d, generator=g) * 0.1
        b_enc, b_dec = torch.full((d_tc,), -0.5), torch.randn(d, generator=g) * 0.01
        threshold, w_skip = torch.rand(d_tc, generator=g) * 0.3, torch.randn(d, d, generator=g) * 0.05
        coders.append(rw.Transcoder(layer, w_enc, b_enc, w_dec, b_dec, threshold=threshold, W_skip=w_skip))
    return rw.TranscoderSet(coders, scan="compat-test")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    python = venv_ct_python()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("circuit_tracer")
    model = rw.load(tiny_llama_dir(tmp / "model"))
    transcoders = jumprelu_skip_transcoders(model)
    save(transcoders, tmp / "transcoders")
    ours = rw.attribution_graph(
        model, PROMPT, transcoders, max_feature_nodes=MAX_FEATURES, batch_size=BATCH, progress=False
    )
    ids = ",".join(str(i) for i in ours.ids.tolist())
    command = [str(python), str(SCRIPT), str(tmp / "model"), str(tmp / "transcoders"), ids, str(tmp / "theirs.pt"),
               "--max-feature-nodes", str(MAX_FEATURES), "--batch-size", str(BATCH),
               "--json", str(tmp / "json")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = torch.load(tmp / "theirs.pt")
    theirs["json"] = json.loads((tmp / "json" / "graph.json").read_text())
    ours.to_circuit_tracer_json(tmp / "ours.json", slug="graph", tokenizer=model.tokenizer)
    ours.json = json.loads((tmp / "ours.json").read_text())
    return ours, theirs


def our_keys(graph) -> list[tuple]:
    keys = []
    for i in range(len(graph.adjacency)):
        node = graph.node(i)
        keys.append({"feature": ("feature", node.layer, node.position, node.feature),
                     "error": ("error", node.layer, node.position), "token": ("token", node.position, node.feature),
                     "logit": ("logit", node.feature)}[node.kind])  # fmt: skip
    return keys


def their_keys(theirs: dict, n_layers: int) -> list[tuple]:
    """circuit-tracer's order: [selected features | errors (layer-major) | token embeddings | logits]."""
    ids, n_pos = theirs["ids"].tolist(), len(theirs["ids"])
    features = theirs["active_features"][theirs["selected_features"]].tolist()
    keys = [("feature", layer, pos, feat) for layer, pos, feat in features]
    keys += [("error", layer, pos) for layer in range(n_layers) for pos in range(n_pos)]
    keys += [("token", pos, ids[pos]) for pos in range(n_pos)]
    return keys + [("logit", t) for t in theirs["logit_ids"].tolist()]


def test_same_tokens_features_and_logit_nodes(both):
    ours, theirs = both
    assert ours.ids.tolist() == theirs["ids"].tolist()  # a BOS put first by both
    assert torch.equal(ours.active_features, theirs["active_features"])
    torch.testing.assert_close(ours.activations, theirs["activations"], rtol=1e-5, atol=1e-6)
    assert ours.logit_ids.tolist() == theirs["logit_ids"].tolist()
    torch.testing.assert_close(ours.logit_probabilities, theirs["logit_probabilities"], rtol=1e-5, atol=1e-7)
    # the features given rows are the same ones: the same influence ranking, visited in the same batches
    assert len(ours.selected_features) == MAX_FEATURES < len(ours.active_features)
    assert torch.equal(ours.selected_features, theirs["selected_features"])


def test_same_adjacency_where_both_keep_a_node(both):
    ours, theirs = both
    mine, their = our_keys(ours), their_keys(theirs, ours.n_layers)
    common = sorted(set(mine) & set(their))
    assert len(common) == len(mine) == len(their)  # same selection, so every node is in both
    a = ours.adjacency[[mine.index(k) for k in common]][:, [mine.index(k) for k in common]]
    b = theirs["adjacency"][[their.index(k) for k in common]][:, [their.index(k) for k in common]]
    assert int((b != 0).sum()) > 1000  # a real graph: features, errors and tokens all feed the targets
    relative = float((a - b).abs().max() / b.abs().max())
    assert relative < 1e-3, relative  # measured 3e-7 (float32 rounding)


def test_same_pruning_and_scores(both):
    ours, theirs = both
    pruned = ours.prune(0.8, 0.98)
    assert torch.equal(pruned.node_mask, theirs["node_mask"])
    assert torch.equal(pruned.edge_mask, theirs["edge_mask"])
    torch.testing.assert_close(pruned.cumulative_scores, theirs["cumulative_scores"], rtol=1e-4, atol=1e-5)
    replacement, completeness = ours.scores()
    assert replacement == pytest.approx(theirs["replacement_score"], abs=1e-4)
    assert completeness == pytest.approx(theirs["completeness_score"], abs=1e-4)


def test_same_graph_json(both):
    """``Graph.to_circuit_tracer_json`` against circuit-tracer's ``create_graph_files`` on the same graph: the same
    nodes (ids and fields) and links."""
    ours, theirs = both
    mine, their = ours.json, theirs["json"]
    assert mine["metadata"]["prompt_tokens"] == their["metadata"]["prompt_tokens"]
    nodes = {n["node_id"]: n for n in mine["nodes"]}
    their_nodes = {n["node_id"]: n for n in their["nodes"]}
    assert nodes.keys() == their_nodes.keys() and len(nodes) > 20
    for node_id, node in their_nodes.items():
        for key, value in node.items():
            if isinstance(value, float):
                assert nodes[node_id][key] == pytest.approx(value, rel=1e-4, abs=1e-6), (node_id, key)
            else:
                assert nodes[node_id][key] == value, (node_id, key)
    links = {(x["source"], x["target"]): x["weight"] for x in mine["links"]}
    their_links = {(x["source"], x["target"]): x["weight"] for x in their["links"]}
    assert links.keys() == their_links.keys()
    assert max(abs(links[k] - w) for k, w in their_links.items()) < 1e-3 * max(abs(w) for w in their_links.values())
