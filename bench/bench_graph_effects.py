"""Graph-predicted against measured effects of ablating a graph's top 20 features on the demo model (run by hand;
results in ``docs/graphs.md``). The graph predicts the direct effect in the replacement model (attention, every norm
and every other MLP output frozen); the real model's effect is measured as the feature's writes subtracted
(``Graph.ablation_effect``), then again with only the final norm's scale frozen at the clean run's, and with
attention and every norm frozen but the real MLPs live. Pearson correlation over the 20 features per prompt, and
pooled over every prompt.

    python bench/bench_graph_effects.py
"""

from __future__ import annotations

import torch


def correlation(a: list[float], b: list[float]) -> float:
    return float(torch.corrcoef(torch.tensor([a, b]))[0, 1])


def subtract(write: torch.Tensor, pos: int):
    """An edit of ``hook_mlp_out`` ``[1, pos, d]`` that subtracts ``write`` at position ``pos``."""

    def edit(y: torch.Tensor) -> torch.Tensor:
        y = y.clone()
        y[0, pos] -= write.to(y)
        return y

    return edit


def main(n_prompts: int = 4, top: int = 20) -> None:
    import repwidget as rw
    from repwidget.graphs.freeze import FrozenNorms
    from repwidget.interventions import Steer
    from repwidget.model.plan import EditStep

    torch.set_num_threads(1)
    model, transcoders = rw.demo_model(), rw.demo.transcoders()
    pooled: dict[str, list[float]] = {"predicted": [], "real": [], "final norm frozen": [], "MLPs live": []}
    for task in ("induction", "ioi"):
        for example in rw.demo.tasks.dataset(task, n_prompts):
            graph = rw.attribution_graph(model, example.text, transcoders, progress=False)
            r = graph._replacement
            final = FrozenNorms(model.hf, model.arch)
            final.modules = [model.hf.get_submodule(model.arch.final_norm)]
            with final.recording():
                model.run(r.ids)
            token = int(graph.logit_ids[0])
            clean = float(r.real_logits[-1, token] - r.real_logits[-1].mean())

            def demeaned(logits: torch.Tensor, token: int = token, clean: float = clean) -> float:
                return float(logits[token] - logits.mean()) - clean

            found: dict[str, list[float]] = {k: [] for k in pooled}
            for node in graph.top_nodes(top):
                effect = graph.ablation_effect(node.index)
                i = int(graph.selected_features[node.index])
                pos, writes = int(graph.active_features[i, 1]), r.feature_writes(i)
                steers = [Steer(layer=t, vector=w.tolist(), scale=-1.0, positions=(pos,)) for t, w in writes]
                with final.frozen(), torch.no_grad():
                    frozen_final = demeaned(model.run(r.ids, steers).logits_at(-1).float())
                edits = {f"blocks.{t}.hook_mlp_out": [EditStep("ablate", [subtract(w, pos)])] for t, w in writes}
                with torch.no_grad(), r.norms.frozen():
                    live = demeaned(r.logits_of(r._pass(edits, grad=False))[-1])
                for key, value in zip(found, (effect["predicted"], effect["real"], frozen_final, live), strict=True):
                    found[key].append(value)
            for key in pooled:
                pooled[key] += found[key]
            r_real, r_final, r_live = (correlation(found["predicted"], found[k]) for k in list(found)[1:])
            print(
                f"{task:9s} {example.text[:40]!r:44s} predicted vs real {r_real:+.2f}, final norm frozen "
                f"{r_final:+.2f}, attention and norms frozen with MLPs live {r_live:+.2f}"
            )
    n = len(pooled["predicted"])
    print(f"pooled over {n} ablations: " + ", ".join(
        f"{k} {correlation(pooled['predicted'], v):+.2f}" for k, v in pooled.items() if k != "predicted"))  # fmt: skip
    print("mean |effect|: " + ", ".join(f"{k} {torch.tensor(v).abs().mean():.3f}" for k, v in pooled.items()))


if __name__ == "__main__":
    main()
