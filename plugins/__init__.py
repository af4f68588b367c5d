"""TensorRT plugins, CUDA and CPU kernels of the two data-dependent ops (C++/CUDA sources under src/).

A package only so that the sources ship with the wheel: ``runtime.plugin_ops`` compiles the CPU
kernels from them on demand.
"""
