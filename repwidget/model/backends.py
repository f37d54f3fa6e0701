"""Which executor runs a model's passes: ``backend="local"`` (hooks in this process) or ``"nnsight"`` (traces,
here or on NDIF with ``remote=True``)."""

from __future__ import annotations

from torch import nn

from .architecture import Architecture
from .executor import Executor, LocalExecutor

#: where passes run: hooks in this process, or nnsight traces (here or on NDIF)
BACKENDS = ("local", "nnsight")


def make_executor(
    backend: str,
    hf: nn.Module,
    arch: Architecture,
    forward_kwargs: dict,
    remote: bool = False,
    tokenizer=None,
    nnsight_model=None,
) -> Executor:
    """The executor of ``backend`` for a model whose architecture is discovered (``nnsight_model``: nnsight's model
    of ``hf`` when one is already built, as for a model without local weights)."""
    if backend == "local":
        if remote:
            raise ValueError("remote=True runs passes on NDIF through nnsight: use backend='nnsight'")
        return LocalExecutor(hf, arch, forward_kwargs)
    if backend == "nnsight":
        try:
            import nnsight  # noqa: F401
        except ImportError:
            raise ImportError("backend='nnsight' needs nnsight: pip install 'nnsight==0.8.1'") from None
        from .nnsight_executor import NNsightExecutor  # only with nnsight installed

        return NNsightExecutor(hf, arch, forward_kwargs, remote=remote, tokenizer=tokenizer, lm=nnsight_model)
    raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r:.40}")
