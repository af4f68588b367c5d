"""edgercnn: torchvision R-CNN detectors exported to ONNX/TensorRT and run on edge cameras."""

__version__ = "0.1.0"
