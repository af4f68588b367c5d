"""Inference backends behind one small interface (see ``base.Backend``) and a factory."""

from __future__ import annotations

from .base import Backend, BackendOptions, TensorSpec, available_backends, open_backend

__all__ = ["Backend", "BackendOptions", "TensorSpec", "available_backends", "open_backend"]
