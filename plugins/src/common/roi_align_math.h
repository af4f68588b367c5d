// RoIAlign / RoIPool arithmetic shared by the CPU kernels and the CUDA kernels.
// Every formula follows torchvision's roi_align / roi_pool kernels and MultiScaleRoIAlign's level
// mapper (see plugins/README.md section 1), including the order of floating-point operations.
#pragma once

#include <climits>
#include <cstdint>

#include "edgercnn_hd.h"

namespace edgercnn {

// Level index of one RoI in [0, num_levels), or -1 when the box area is negative (x2 < x1 xor
// y2 < y1): torchvision's level mapper then yields NaN, matches no level and leaves the row zero.
EDGERCNN_HD int roi_level_index(float x1, float y1, float x2, float y2, int k_min, int k_max,
                                float canonical_scale, float canonical_level, float eps, int num_levels) {
    if (num_levels <= 1) {
        return 0;
    }
    const float area = (x2 - x1) * (y2 - y1);
    if (!(area >= 0.0f)) {
        return -1;
    }
    const float s = sqrtf(area);
    float k = floorf(canonical_level + log2f(s / canonical_scale) + eps);
    k = k < static_cast<float>(k_min) ? static_cast<float>(k_min) : k;
    k = k > static_cast<float>(k_max) ? static_cast<float>(k_max) : k;
    return static_cast<int>(k) - k_min;
}

// Level exponent k of a scale 1/2^k (scales are powers of two): round(-log2(scale)).
EDGERCNN_HD int level_exponent(float spatial_scale) {
    return static_cast<int>(lroundf(-log2f(spatial_scale)));
}

// Upper bound of the adaptive sampling grid (sampling_ratio <= 0) per bin and axis. torchvision has
// none: a huge RoI makes ceil(roi / out) samples per bin, and an infinite or NaN one an undefined
// float-to-int cast (a loop of 2^31 samples on the GPU). 256 covers a 7-bin RoI of 7168 feature
// pixels, far beyond a clipped RoI on any FPN level; beyond it the grid is clamped (documented in
// plugins/README.md), and a NaN extent gives an empty grid (output 0).
constexpr int kMaxSamplingGrid = 256;

EDGERCNN_HD int adaptive_grid(float extent, int bins) {
    const float g = ceilf(extent / static_cast<float>(bins));
    if (!(g > 0.0f)) {
        return 0;  // zero, negative or NaN: no samples (torchvision: no loop iterations)
    }
    return g < static_cast<float>(kMaxSamplingGrid) ? static_cast<int>(g) : kMaxSamplingGrid;
}

// The level table the fused kernels rely on: 1..max_levels levels whose scales are powers of two
// (1/stride) in decreasing order with no gap (1/4, 1/8, 1/16, ...), since a RoI's level is its
// exponent k minus k_min; sizes in [0, INT32_MAX] (an empty level, H or W = 0, is allowed and
// samples as zeros). Returns nullptr or what is wrong.
inline const char* level_table_error(int num_levels, int max_levels, const float* spatial_scales,
                                     const int64_t* heights, const int64_t* widths) {
    if (num_levels < 1 || num_levels > max_levels) {
        return "1 to 5 levels expected";
    }
    for (int l = 0; l < num_levels; ++l) {
        const float s = spatial_scales[l];
        if (!(s > 0.0f) || !std::isfinite(s) || std::fabs(std::log2(s) - std::round(std::log2(s))) > 1e-3f) {
            return "spatial_scales must be powers of two (1/stride)";
        }
        if (l > 0 && level_exponent(s) != level_exponent(spatial_scales[l - 1]) + 1) {
            return "spatial_scales must halve from one level to the next (1/4, 1/8, ...: finest first, no gap)";
        }
        if (heights != nullptr && (heights[l] < 0 || heights[l] > INT32_MAX || widths[l] < 0 ||
                                   widths[l] > INT32_MAX)) {
            return "feature map height and width must be in [0, 2^31 - 1]";
        }
    }
    return nullptr;
}

// Where the samples of one RoI lie on its level (torchvision roi_align's per-RoI set-up).
struct RoiAlignGeometry {
    float start_h;
    float start_w;
    float bin_h;
    float bin_w;
    int grid_h;
    int grid_w;
    float count;
};

EDGERCNN_HD RoiAlignGeometry roi_align_geometry(float x1, float y1, float x2, float y2, float spatial_scale,
                                                int out_h, int out_w, int sampling_ratio, bool aligned) {
    const float offset = aligned ? 0.5f : 0.0f;
    RoiAlignGeometry g;
    g.start_w = x1 * spatial_scale - offset;
    g.start_h = y1 * spatial_scale - offset;
    const float end_w = x2 * spatial_scale - offset;
    const float end_h = y2 * spatial_scale - offset;
    float roi_w = end_w - g.start_w;
    float roi_h = end_h - g.start_h;
    if (!aligned) {
        roi_w = max_like_std(roi_w, 1.0f);
        roi_h = max_like_std(roi_h, 1.0f);
    }
    g.bin_h = roi_h / static_cast<float>(out_h);
    g.bin_w = roi_w / static_cast<float>(out_w);
    g.grid_h = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(roi_h, out_h);
    g.grid_w = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(roi_w, out_w);
    const int n = g.grid_h * g.grid_w;
    g.count = static_cast<float>(n > 1 ? n : 1);
    return g;
}

// Sample coordinate along one axis: start + bin_index * bin + (i + 0.5) * bin / grid.
EDGERCNN_HD float sample_coordinate(float start, int bin_index, float bin, int i, int grid) {
    return start + static_cast<float>(bin_index) * bin +
           static_cast<float>(i + 0.5f) * bin / static_cast<float>(grid);
}

// The four taps of one bilinear sample with torchvision's border rules.
struct BilinearTap {
    int y_low;
    int x_low;
    int y_high;
    int x_high;
    float w1;
    float w2;
    float w3;
    float w4;
};

// Returns false when the sample lies outside [-1, H] x [-1, W] (or is NaN), or the level is empty
// (H or W = 0: torchvision would read index -1), and contributes 0.
EDGERCNN_HD bool bilinear_tap(float y, float x, int height, int width, BilinearTap& t) {
    if (height <= 0 || width <= 0 || !(y >= -1.0f && y <= static_cast<float>(height)) ||
        !(x >= -1.0f && x <= static_cast<float>(width))) {
        return false;
    }
    if (y <= 0.0f) {
        y = 0.0f;
    }
    if (x <= 0.0f) {
        x = 0.0f;
    }
    t.y_low = static_cast<int>(y);
    t.x_low = static_cast<int>(x);
    if (t.y_low >= height - 1) {
        t.y_high = t.y_low = height - 1;
        y = static_cast<float>(t.y_low);
    } else {
        t.y_high = t.y_low + 1;
    }
    if (t.x_low >= width - 1) {
        t.x_high = t.x_low = width - 1;
        x = static_cast<float>(t.x_low);
    } else {
        t.x_high = t.x_low + 1;
    }
    const float ly = y - static_cast<float>(t.y_low);
    const float lx = x - static_cast<float>(t.x_low);
    const float hy = 1.0f - ly;
    const float hx = 1.0f - lx;
    t.w1 = hy * hx;
    t.w2 = hy * lx;
    t.w3 = ly * hx;
    t.w4 = ly * lx;
    return true;
}

// Quantized RoI of torchvision's roi_pool on one level.
struct RoiPoolGeometry {
    int start_h;
    int start_w;
    float bin_h;
    float bin_w;
};

EDGERCNN_HD RoiPoolGeometry roi_pool_geometry(float x1, float y1, float x2, float y2, float spatial_scale,
                                              int out_h, int out_w) {
    RoiPoolGeometry g;
    g.start_w = static_cast<int>(roundf(x1 * spatial_scale));
    g.start_h = static_cast<int>(roundf(y1 * spatial_scale));
    const int end_w = static_cast<int>(roundf(x2 * spatial_scale));
    const int end_h = static_cast<int>(roundf(y2 * spatial_scale));
    const int roi_w = (end_w - g.start_w + 1) > 1 ? (end_w - g.start_w + 1) : 1;
    const int roi_h = (end_h - g.start_h + 1) > 1 ? (end_h - g.start_h + 1) : 1;
    g.bin_h = static_cast<float>(roi_h) / static_cast<float>(out_h);
    g.bin_w = static_cast<float>(roi_w) / static_cast<float>(out_w);
    return g;
}

// Half-open pixel range [begin, end) of one pooling bin along one axis, clipped to [0, size].
EDGERCNN_HD void roi_pool_bin_range(int bin_index, float bin, int roi_start, int size, int& begin, int& end) {
    int b = static_cast<int>(floorf(static_cast<float>(bin_index) * bin));
    int e = static_cast<int>(ceilf(static_cast<float>(bin_index + 1) * bin));
    b += roi_start;
    e += roi_start;
    b = b < 0 ? 0 : (b > size ? size : b);
    e = e < 0 ? 0 : (e > size ? size : e);
    begin = b;
    end = e;
}

}  // namespace edgercnn
