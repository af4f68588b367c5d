"""Scale-out on NVIDIA Triton Inference Server: the wire protocol, the model repository, serving.

- ``protocol``: the tensors a detection model on Triton takes and returns, packed and unpacked
  from the runtime's own ``Detections`` (shared by the server models and the clients);
- ``repository``: writes a Triton model repository for an exported model (``edgercnn triton``);
- ``python_model``: the python-backend ``model.py`` copied into that repository; it runs this
  runtime (copied beside it) and nothing else;
- ``local_server``: a CPU ``tritonserver`` from the ``nvidia-pytriton`` wheel, for tests and
  benchmarks on machines without a GPU.

The client backend for ``Detector`` is ``runtime/backends/triton.py``.
"""
