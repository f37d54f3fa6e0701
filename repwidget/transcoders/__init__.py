"""Transcoders (MLP input -> MLP output through sparse features): the contract, circuit-tracer and SAELens files."""

from .model import CrossLayerTranscoder, Transcoder, TranscoderSet

__all__ = ["CrossLayerTranscoder", "Transcoder", "TranscoderSet"]
