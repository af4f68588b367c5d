// Shared host/device qualifiers so the same arithmetic compiles with nvcc and with a plain g++.
#pragma once

#if defined(__CUDACC__)
#define EDGERCNN_HD __host__ __device__ __forceinline__
#else
#define EDGERCNN_HD inline
#endif

#include <cmath>
#include <cstdint>

namespace edgercnn {

// Products that feed a subtraction are kept unfused on the device: torchvision's CPU kernels
// (the reference) round each product, and nvcc would otherwise contract them into FMAs.
EDGERCNN_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

// std::max / std::min semantics (first argument wins on NaN), as torchvision's kernels use them.
EDGERCNN_HD float max_like_std(float a, float b) { return (a < b) ? b : a; }
EDGERCNN_HD float min_like_std(float a, float b) { return (b < a) ? b : a; }

}  // namespace edgercnn
