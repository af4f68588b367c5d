"""Build-host side: torch models -> static-shape deploy graph -> ONNX / TensorRT artefacts."""
