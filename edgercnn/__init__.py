"""edgercnn: torchvision R-CNN detectors exported to ONNX/TensorRT and run on edge cameras."""

from .runtime._version import __version__

__all__ = ["__version__"]
