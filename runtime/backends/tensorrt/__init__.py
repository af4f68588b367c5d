"""TensorRT on the device, torch-free.

Build plan, builder, calibrator, progress, sidecar, CUDA helpers, plugin loading and the backend.
"""
