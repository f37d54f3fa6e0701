"""Transcoders (MLP input -> MLP output through sparse features): the contract, circuit-tracer and SAELens files."""

from .cross_layer import CrossLayerTranscoder
from .model import Transcoder, TranscoderSet

__all__ = ["CrossLayerTranscoder", "Transcoder", "TranscoderSet"]
