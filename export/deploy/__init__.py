"""Static-shape re-expression of torchvision R-CNN inference (the graph that gets exported)."""

from edgercnn.export.deploy.errors import ExportError, UnsupportedInputSizeError, UnsupportedModelError
from edgercnn.export.deploy.geometry import InputGeometry, input_geometry
from edgercnn.export.deploy.model import DeployOptions, DeployRCNN, architecture_kind

__all__ = [
    "DeployOptions",
    "DeployRCNN",
    "ExportError",
    "InputGeometry",
    "UnsupportedInputSizeError",
    "UnsupportedModelError",
    "architecture_kind",
    "input_geometry",
]
