"""INT8 and FP16: ranges, Q/DQ placement, sensitivity, the TensorRT calibration cache, reports."""
