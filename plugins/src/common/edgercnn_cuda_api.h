// C entry points of the CUDA kernels (libedgercnn_kernels / libedgercnn_plugins): device pointers in,
// device pointers out, everything enqueued on the given stream. Used by the TensorRT plugins and,
// through ctypes on torch CUDA tensors, by the tests and benchmarks without TensorRT.
// Shapes and semantics: plugins/README.md. Return 0 (cudaSuccess) or a cudaError_t / negative
// value (-1: invalid arguments, -2: workspace too small, -3: problem too large for the algorithm,
// -4: the workspace size cannot be known because cub's size query failed).
#pragma once

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// 2: rois_dtype apart from the features' dtype; workspace size SIZE_MAX when it cannot be known.
#define EDGERCNN_CUDA_API_VERSION 2

enum EdgeRCNNDataType { EDGERCNN_FLOAT32 = 0, EDGERCNN_FLOAT16 = 1 };
enum EdgeRCNNIndexType { EDGERCNN_INT64 = 0, EDGERCNN_INT32 = 1 };
// NMS algorithm: AUTO picks the IoU bitmask (fast, workspace O(B^2/8)) when the candidates fit in
// EDGERCNN_NMS_MASK_MAX_BOXES, else the greedy per-image block (workspace O(B)).
enum EdgeRCNNNmsAlgorithm { EDGERCNN_NMS_AUTO = 0, EDGERCNN_NMS_BITMASK = 1, EDGERCNN_NMS_GREEDY = 2 };
#define EDGERCNN_NMS_MASK_MAX_BOXES 8192
#define EDGERCNN_MAX_LEVELS 5

int edgercnn_cuda_api_version(void);

// rois [N, R, 4] in `rois_dtype`, features[l] [N, C, heights[l], widths[l]] (host array of device
// pointers) and out [N, R, C, out_h, out_w] in `dtype`. spatial_scales is a host array of num_levels
// floats: powers of two, finest first, halving from one level to the next (-1 otherwise).
int edgercnn_cuda_multi_level_roi_align(int32_t dtype, int32_t rois_dtype, const void* rois,
                                        const void* const* features,
                                        int32_t num_levels, const int64_t* heights, const int64_t* widths,
                                        int64_t batch, int64_t num_rois, int64_t channels,
                                        const float* spatial_scales, int32_t out_h, int32_t out_w,
                                        int32_t sampling_ratio, int32_t aligned, int32_t mode,
                                        int32_t canonical_scale, int32_t canonical_level, float eps, void* out,
                                        cudaStream_t stream);

// Bytes of device workspace edgercnn_cuda_batched_nms needs for these sizes and algorithm; SIZE_MAX
// when it cannot be known (invalid sizes, or cub's own size query failed, e.g. no usable device).
size_t edgercnn_cuda_batched_nms_workspace_size(int64_t batch, int64_t num_boxes, int64_t pre_nms_top_n,
                                                int32_t algorithm);

// boxes [N, B, 4] and scores [N, B] in `dtype`, idxs [N, B] in `idx_dtype`; keep [N, max_output]
// int64 (-1 padded) and count [N] int64.
int edgercnn_cuda_batched_nms(int32_t dtype, int32_t idx_dtype, const void* boxes, const void* scores,
                              const void* idxs, int64_t batch, int64_t num_boxes, double iou_threshold,
                              float score_threshold, int64_t max_output, int64_t pre_nms_top_n, int64_t* keep,
                              int64_t* count, void* workspace, size_t workspace_size, int32_t algorithm,
                              cudaStream_t stream);

#ifdef __cplusplus
}
#endif
