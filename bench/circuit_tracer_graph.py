"""circuit-tracer 0.5's attribution graph of one prompt, written to a ``.pt`` file: run inside ``.venv-ct``
(``scripts/setup_circuit_tracer.sh``), never imported by repwidget.

    .venv-ct/bin/python bench/circuit_tracer_graph.py MODEL_DIR TRANSCODERS_DIR IDS OUT.pt [--max-feature-nodes N]
        [--batch-size B] [--max-logits K] [--logit-probability P] [--threads T] [--json DIR]

``MODEL_DIR``: a local Hugging Face model directory (an architecture circuit-tracer's nnsight backend maps: Llama,
Qwen3, Gemma 2/3, GPT-OSS); ``TRANSCODERS_DIR``: a transcoder set in circuit-tracer's layout (what
``rw.TranscoderSet.save`` writes by default); ``IDS``: the prompt's token ids, comma-separated (a
special token first, so that both tools see the same tokens). The file holds ``adjacency``, ``active_features``
``[n, 3]`` (layer, position, feature), ``activations``, ``selected_features``, ``logit_ids``,
``logit_probabilities``, ``ids``, ``seconds`` and ``cpu_seconds`` (the ``attribute`` call alone), and what
circuit-tracer's ``prune_graph(graph, 0.8, 0.98)`` keeps (``node_mask``, ``edge_mask``, ``cumulative_scores``) and its
``compute_graph_scores`` (``replacement_score``, ``completeness_score``). ``--json DIR``: also its graph JSON
(``create_graph_files``, slug ``graph``) into ``DIR``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml


def load(model_dir: str, transcoders_dir: str):
    from circuit_tracer import ReplacementModel
    from circuit_tracer.utils.hf_utils import load_transcoders

    folder = Path(transcoders_dir).resolve()
    config = yaml.safe_load((folder / "config.yaml").read_text())
    n_layers = len(list(folder.glob("layer_*.safetensors")))
    # a local set: circuit-tracer follows a `transcoders` list of files (else it asks the hub for `repo_id`)
    config["transcoders"] = [str(folder / f"layer_{i}.safetensors") for i in range(n_layers)]
    transcoders = load_transcoders(config, device=torch.device("cpu"), dtype=torch.float32, lazy_decoder=False)
    return ReplacementModel.from_pretrained_and_transcoders(
        model_dir, transcoders, backend="nnsight", device=torch.device("cpu"), dtype=torch.float32
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("transcoders_dir")
    parser.add_argument("ids", help="token ids, comma-separated")
    parser.add_argument("out")
    parser.add_argument("--max-feature-nodes", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-logits", type=int, default=10)
    parser.add_argument("--logit-probability", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="a directory for circuit-tracer's graph JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from circuit_tracer import attribute

    model = load(args.model_dir, args.transcoders_dir)
    ids = [int(x) for x in args.ids.split(",")]
    start, cpu_start = time.perf_counter(), time.process_time()
    graph = attribute(
        torch.tensor(ids),
        model,
        max_n_logits=args.max_logits,
        desired_logit_prob=args.logit_probability,
        batch_size=args.batch_size,
        max_feature_nodes=args.max_feature_nodes,
    )
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    from circuit_tracer.graph import compute_graph_scores, prune_graph

    pruned = prune_graph(graph, node_threshold=0.8, edge_threshold=0.98)
    replacement_score, completeness_score = compute_graph_scores(graph)
    if args.json:
        from circuit_tracer.utils.create_graph_files import create_graph_files

        create_graph_files(graph, slug="graph", output_path=args.json, node_threshold=0.8, edge_threshold=0.98)
    torch.save(
        {
            "adjacency": graph.adjacency_matrix.float().cpu(),
            "active_features": graph.active_features.long().cpu(),
            "activations": graph.activation_values.float().cpu(),
            "selected_features": graph.selected_features.long().cpu(),
            "logit_ids": torch.tensor([t.vocab_idx for t in graph.logit_targets], dtype=torch.long),
            "logit_probabilities": graph.logit_probabilities.float().cpu(),
            "ids": graph.input_tokens.long().cpu(),
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "node_mask": pruned.node_mask.cpu(),
            "edge_mask": pruned.edge_mask.cpu(),
            "cumulative_scores": pruned.cumulative_scores.float().cpu(),
            "replacement_score": replacement_score,
            "completeness_score": completeness_score,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
