// C entry points of the CPU kernels (libedgercnn_cpu), called from Python with ctypes.
// Shapes and semantics are those of plugins/README.md; all arrays are contiguous, row-major.
// Every function returns 0 on success and a negative value on invalid arguments.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGERCNN_CPU_API_VERSION 1

int edgercnn_cpu_api_version(void);

// rois [N, R, 4]; features[l] [N, C, heights[l], widths[l]]; out [N, R, C, out_h, out_w].
int edgercnn_cpu_multi_level_roi_align_f32(const float* rois, const float* const* features, int32_t num_levels,
                                           const int64_t* heights, const int64_t* widths, int64_t batch,
                                           int64_t num_rois, int64_t channels, const float* spatial_scales,
                                           int32_t out_h, int32_t out_w, int32_t sampling_ratio, int32_t aligned,
                                           int32_t mode, int32_t canonical_scale, int32_t canonical_level,
                                           float eps, float* out);

// boxes [N, B, 4], scores [N, B], idxs [N, B]; keep [N, max_output] (-1 padded), count [N].
int edgercnn_cpu_batched_nms_f32(const float* boxes, const float* scores, const int64_t* idxs, int64_t batch,
                                 int64_t num_boxes, double iou_threshold, float score_threshold,
                                 int64_t max_output, int64_t pre_nms_top_n, int64_t* keep, int64_t* count);

#ifdef __cplusplus
}
#endif
