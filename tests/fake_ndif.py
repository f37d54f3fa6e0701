"""A stand-in for NDIF in tests and benches: nnsight's remote request format, run against a separate server model."""

from __future__ import annotations

import io
import linecache

import torch

from repwidget.model.nnsight_remote import decode


class FakeNDIF:
    """An nnsight backend standing in for NDIF: the request serialised as RemoteBackend sends it (zstd), rebuilt
    with every non-installed module hidden (repwidget is not importable) against the *server's* model, run there,
    and the saved values sent back as NDIF sends them (``torch.save``, zstd). ``sent`` / ``received``: bytes of each
    request and result on the wire; ``raw``: each result's bytes uncompressed."""

    def __init__(self, server) -> None:
        from nnsight.intervention.backends.local import LocalSimulationBackend

        self.server = server
        self.sent: list[int] = []
        self.received: list[int] = []
        self.raw: list[int] = []
        self._hider = LocalSimulationBackend(server)

    def __call__(self, tracer) -> None:
        import zstandard
        from nnsight.ndif import pull_env
        from nnsight.schema.request import RequestModel
        from nnsight.tracing.tracer import _saves, push, save

        pull_env()
        blob = RequestModel.serialize(tracer, compress=True)
        self.sent.append(len(blob))
        filename = tracer.info.frame.f_code.co_filename
        kept = linecache.cache.get(filename)
        hidden = self._hider._hide_local_modules()
        try:
            restored = RequestModel.deserialize(blob, self.server._remoteable_persistent_objects(), compress=True)
        finally:
            self._hider._restore(hidden)
            linecache.cache.pop(filename, None) if kept is None else linecache.cache.__setitem__(filename, kept)
        restored.execute(restored.info.code)  # on the server's model and weights
        result = {k: v for k, v in restored.info.frame.f_locals.items() if id(v) in _saves()}
        buffer = io.BytesIO()
        torch.save(result, buffer)
        self.raw.append(len(buffer.getvalue()))
        wire = zstandard.ZstdCompressor(level=6).compress(buffer.getvalue())
        self.received.append(len(wire))
        result = decode(wire, True, 1 << 30)  # as repwidget reads NDIF's results: tensors and containers only
        for value in result.values():
            save(value)
        push(tracer.info.frame, result)
