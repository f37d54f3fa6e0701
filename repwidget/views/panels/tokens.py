"""Tokens: the prompt; click selects a position. Its colours come from the neurons and features panels'
requests (``neuron``, ``feature``) and from the attention pattern on hover."""

from __future__ import annotations

from ..panel import Panel

PANEL = Panel(name="tokens")
