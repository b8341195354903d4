"""Harbourgate: an AI governance gateway."""

__version__ = "0.1.0"
