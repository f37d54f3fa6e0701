"""The nnsight trace of a compiled pass (:class:`~repwidget.model.nnsight_program.Program`).

nnsight ships the body's *source* and the locals it reads to whichever machine runs it, so :func:`run_trace` may
use only torch and the program's data (DEVELOPERS.md, Backends): a server that has never seen repwidget runs it.
"""

from __future__ import annotations

import torch


def run_trace(lm, inputs: dict, program: dict, sinks: dict, feed, kwargs: dict) -> dict:
    """One nnsight trace of ``program``: the body below uses only torch and the program's data, so it runs the
    same here and on a server (nnsight ships its source and the locals it reads)."""
    import nnsight

    out = None  # what the body fills (stays None when a backend only serialises the trace)
    with lm.trace(**inputs, **kwargs) as tracer:
        out = {"caches": [{} for _ in program["spans"]], "bad": [], "final": None, "logits": None}
        out = nnsight.save({**out, "lens": [], "sinks": {}, "finite": None})
        spans, whole = program["spans"], program["whole"]
        if program["eager"]:  # the attention returns probabilities for this pass, on whichever machine runs it
            config = lm._module.config
            attention_before = config._attn_implementation
            config._attn_implementation = "eager"
        if program["grad"]:
            embed = program["embed"]
            e = embed.output
            if not e.requires_grad:
                embed.output = e.detach().requires_grad_()
        block_in = {}
        for step in program["steps"]:
            layer, envoy, when, is_block = step["layer"], step["envoy"], step["when"], step["is_block"]
            scale, hooks = step["scale"], step["hooks"]
            if when == "pattern":
                probs = envoy.output[program["pattern_at"]]
                if probs is None:
                    raise ValueError("the attention returned no probabilities (not eager attention), so thumbnails, "
                                     "head scores and patterns cannot be read from it")  # fmt: skip
                if layer in sinks:
                    feed(sinks[layer], probs[:1])
                reductions = program["reduce"].get(layer)
                if reductions is not None:  # thumbnails, one head's window, head scores: reduced here
                    p = probs[0]  # the first sequence: [heads, q, k]
                    n = p.shape[-1]
                    reduced = []
                    for spec in reductions:
                        if spec[0] == "pool":
                            heads, rows, cols, side = spec[1:]
                            q0, q1 = rows or (0, n)
                            k0, k1 = cols or (0, n)
                            q1, k1 = n if q1 is None else q1, n if k1 is None else k1
                            window = p[heads, q0:q1, k0:k1].float()
                            size = (min(q1 - q0, side), min(k1 - k0, side))
                            reduced.append(torch.nn.functional.adaptive_max_pool2d(window, size))
                        else:
                            q = torch.arange(1, n, device=p.device)
                            sums = {"previous_token": p[:, q, q - 1].double().sum(-1),
                                    "first_token": p[..., 0].double().sum(1)}  # fmt: skip
                            for name, (qs, ks) in spec[1].items():
                                sums[name] = p[:, qs.to(p.device), ks.to(p.device)].double().sum(-1)
                            reduced.append(sums)
                    out["sinks"][layer] = reduced
                for name, _template, keep, _ops in hooks:
                    if keep:
                        for i, (s0, s1) in enumerate(spans):
                            out["caches"][i][name] = probs[i, :, s0:s1, s0:s1]
                continue
            raw = envoy.input if when == "pre" else envoy.output
            single = isinstance(raw, torch.Tensor)
            y = raw if single else raw[0]
            shape = y.shape
            if y.dim() == 2:  # flattened [batch * pos, width] inside some MLPs (OPT)
                y = y.reshape(len(spans) if not whole else 1, -1, y.shape[-1])
            changed = False
            for name, template, keep, ops in hooks:
                mid = template == "hook_resid_mid"
                value = y if is_block or when == "pre" else (block_in[layer] + scale * y if mid else scale * y)
                if ops or program["grad"]:
                    value = value.clone()
                    for i, (s0, s1) in enumerate(spans):
                        seg = value if whole else value[i : i + 1, s0:s1]
                        for label, per_sequence in ops:
                            op = per_sequence[i]
                            if op is None:
                                continue
                            kind, at = op[0], op[1]
                            if kind == "set":
                                seg[:, at, op[2]] = 0 if op[3] is None else op[3].to(seg.device, seg.dtype)
                            elif kind == "add":
                                seg[:, at] = seg[:, at] + op[2].to(seg.device, seg.dtype)
                            elif kind == "project":
                                u = op[2].to(seg.device, seg.dtype)
                                rows = seg[:, at]
                                shift = op[3].to(seg.device, seg.dtype) - rows @ u
                                seg[:, at] = rows + shift[..., None] * u
                            else:  # splice an SAE in minus one feature: remove that feature's decoder contribution
                                feature, (w_enc, b_enc, b_dec, dec, sub_b_dec, norms), kind_sae, k, threshold = op[2:]
                                rows = seg[:, at]
                                x = rows.reshape(-1, rows.shape[-1]).float()
                                w_enc, b_enc, b_dec, dec = (t.to(x.device) for t in (w_enc, b_enc, b_dec, dec))
                                pre = (x - b_dec if sub_b_dec else x) @ w_enc + b_enc
                                if norms is not None:
                                    pre = pre * norms.to(x.device)
                                if kind_sae == "topk":
                                    top = pre.topk(k, dim=-1, sorted=False)
                                    acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
                                else:
                                    acts = pre.relu()
                                    if kind_sae == "jumprelu":
                                        acts = acts * (pre > threshold.to(pre.device))
                                spliced = x - acts[:, feature : feature + 1] * dec[feature]
                                seg[:, at] = spliced.reshape(rows.shape).to(seg.dtype)
                            if not bool(torch.isfinite(seg).all()):
                                out["bad"].append((label, name, str(seg.dtype)))
                edited = value
                if keep:
                    for i, (s0, s1) in enumerate(spans):
                        v = edited[0] if whole else edited[i, s0:s1]
                        if template == "attn.hook_z":
                            v = v.reshape(v.shape[0], program["heads"][0], program["heads"][1])
                        out["caches"][i][name] = v if program["grad"] else v.detach()
                    if program["grad"] and whole:  # the pass goes on from what was captured: gradients reach it
                        edited = out["caches"][0][name].reshape(value.shape)
                if ops or program["grad"]:
                    y = edited if is_block or when == "pre" else ((edited - block_in[layer]) if mid else edited) / scale
                    changed = True
            if is_block and when == "pre":
                block_in[layer] = y
            if is_block and when == "post" and program["lens"] is not None:  # the logit lens, reduced here
                first, last, k = program["lens"]
                h = y[:, first:last]
                h = program["norm"](h) if program["norm"] is not None else h
                top = program["unembed"](h).float().softmax(-1).topk(k)
                out["lens"].append((top.indices[0], top.values[0]))
            if changed:
                y = y.reshape(shape)
                new = y if single else (y, *raw[1:])
                if when == "pre":
                    envoy.input = y
                else:
                    envoy.output = new
        if program["eager"]:  # every pattern is read (here the executor also restores it, in finally)
            config._attn_implementation = attention_before
        if program["stop_early"]:  # everything asked for is read: the rest of the pass is not needed
            tracer.stop()
        if program["rows"] is not None:  # predictions reduced here: only what the views show comes back
            spec = program["rows"]
            logits = lm.output["logits"]
            out["finite"] = torch.isfinite(logits).all()
            if spec[0] == "logits":
                out["rows"] = logits[0, spec[1]].detach()
            else:
                positions, k, following = spec[1], spec[2], spec[3]
                both = logits[:, positions].detach().float()
                if both.shape[0] == 1:  # the clean sequence is the intervened one
                    both = torch.cat([both, both])
                logp = both.log_softmax(-1)
                probs = logp.exp()
                top = probs.topk(k, dim=-1)
                d_prob, d_logit = probs[1] - probs[0], both[1] - both[0]
                first = logp[0].argmax(-1)
                nxt = following.to(logp.device)[:, None]
                out["compare"] = {
                    "ids": top.indices.int(), "probs": top.values,
                    "delta_prob": torch.stack([d_prob.gather(-1, top.indices[0]), d_prob.gather(-1, top.indices[1])]),
                    "delta_logit": torch.stack([d_logit.gather(-1, top.indices[0]),
                                                d_logit.gather(-1, top.indices[1])]),
                    "top": first.int(), "clean_p": logp[0].gather(-1, first[:, None])[:, 0].exp(),
                    "p": logp[1].gather(-1, first[:, None])[:, 0].exp(),
                    "clean_loss": -logp[0].gather(-1, nxt)[:, 0], "loss": -logp[1].gather(-1, nxt)[:, 0],
                }  # fmt: skip
        elif program["lazy"]:
            head = program["unembed"]
            hidden = head.input
            if program["weightless"]:  # no final hidden state back: logits are read in a pass (logits_rows)
                out["finite"] = torch.isfinite(hidden).all()
            else:
                out["final"] = hidden.detach()
            head.skip(hidden.new_zeros((hidden.shape[0], 0, program["vocab"])))
        else:
            out["logits"] = lm.output["logits"] if program["unembed"] else None
    return out
