"""Transcoders (MLP input -> MLP output through sparse features): the contract, circuit-tracer and SAELens files,
training."""

from .cross_layer import CrossLayerTranscoder
from .model import Transcoder, TranscoderSet
from .quality import Quality, quality
from .train import train_transcoder

__all__ = ["CrossLayerTranscoder", "Quality", "Transcoder", "TranscoderSet", "quality", "train_transcoder"]
