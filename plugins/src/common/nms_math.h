// Box arithmetic of batched NMS shared by the CPU and CUDA kernels (torchvision's nms kernel formulas).
#pragma once

#include "edgercnn_hd.h"

namespace edgercnn {

EDGERCNN_HD float box_area(float x1, float y1, float x2, float y2) { return (x2 - x1) * (y2 - y1); }

// IoU as torchvision computes it: inter / (area_a + area_b - inter), areas without +1.
EDGERCNN_HD float box_iou(float ax1, float ay1, float ax2, float ay2, float area_a, float bx1, float by1, float bx2,
                          float by2, float area_b) {
    const float xx1 = max_like_std(ax1, bx1);
    const float yy1 = max_like_std(ay1, by1);
    const float xx2 = min_like_std(ax2, bx2);
    const float yy2 = min_like_std(ay2, by2);
    const float w = max_like_std(0.0f, xx2 - xx1);
    const float h = max_like_std(0.0f, yy2 - yy1);
    const float inter = mul_rn(w, h);
    return inter / (area_a + area_b - inter);
}

// torchvision compares the float IoU with a double threshold. The largest float <= threshold gives
// the same decision for every float IoU: iou > t  <=>  iou > float_threshold_below(t).
inline float float_threshold_below(double threshold) {
    float f = static_cast<float>(threshold);
    if (static_cast<double>(f) > threshold) {
        f = std::nextafter(f, -INFINITY);
    }
    return f;
}

// Sort key for score-descending order; -0.0 and +0.0 compare equal in torch's sort, so fold them.
EDGERCNN_HD float score_sort_key(float score) { return score + 0.0f; }

}  // namespace edgercnn
