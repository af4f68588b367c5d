// CPU fused multi-level RoIAlign / RoIPool. Per RoI, the bilinear taps of every sample are computed
// once and reused for all channels (the channel loop dominates the cost).
#include <cfloat>
#include <vector>

#include "../common/edgercnn_cpu_api.h"
#include "../common/roi_align_math.h"

namespace {

using edgercnn::BilinearTap;

// One bilinear sample: flat offsets of its four taps on the level and their weights.
struct Tap {
    int64_t p1;
    int64_t p2;
    int64_t p3;
    int64_t p4;
    float w1;
    float w2;
    float w3;
    float w4;
};

struct LevelView {
    const float* data;  // [N, C, H, W]
    int64_t height;
    int64_t width;
    float scale;
};

void align_one_roi(const float* box, const LevelView& level, const float* image_features, int64_t channels,
                   int32_t out_h, int32_t out_w, int32_t sampling_ratio, bool aligned,
                   std::vector<Tap>& taps, std::vector<int>& tap_count, float* out) {
    const int h = static_cast<int>(level.height);
    const int w = static_cast<int>(level.width);
    const edgercnn::RoiAlignGeometry g = edgercnn::roi_align_geometry(
        box[0], box[1], box[2], box[3], level.scale, out_h, out_w, sampling_ratio, aligned);
    const int64_t bins = static_cast<int64_t>(out_h) * out_w;
    taps.clear();
    tap_count.assign(static_cast<size_t>(bins), 0);
    for (int ph = 0; ph < out_h; ++ph) {
        for (int pw = 0; pw < out_w; ++pw) {
            int n = 0;
            for (int iy = 0; iy < g.grid_h; ++iy) {
                const float y = edgercnn::sample_coordinate(g.start_h, ph, g.bin_h, iy, g.grid_h);
                for (int ix = 0; ix < g.grid_w; ++ix) {
                    const float x = edgercnn::sample_coordinate(g.start_w, pw, g.bin_w, ix, g.grid_w);
                    BilinearTap t{};
                    if (edgercnn::bilinear_tap(y, x, h, w, t)) {
                        const int64_t row_low = static_cast<int64_t>(t.y_low) * w;
                        const int64_t row_high = static_cast<int64_t>(t.y_high) * w;
                        taps.push_back(Tap{row_low + t.x_low, row_low + t.x_high, row_high + t.x_low,
                                           row_high + t.x_high, t.w1, t.w2, t.w3, t.w4});
                        ++n;
                    }
                }
            }
            tap_count[static_cast<size_t>(ph * out_w + pw)] = n;
        }
    }
    const int64_t plane = level.height * level.width;
    for (int64_t c = 0; c < channels; ++c) {
        const float* f = image_features + c * plane;
        float* o = out + c * bins;
        size_t k = 0;
        for (int64_t b = 0; b < bins; ++b) {
            float acc = 0.0f;
            for (int s = 0; s < tap_count[static_cast<size_t>(b)]; ++s, ++k) {
                const Tap& t = taps[k];
                acc += t.w1 * f[t.p1] + t.w2 * f[t.p2] + t.w3 * f[t.p3] + t.w4 * f[t.p4];
            }
            o[b] = acc / g.count;
        }
    }
}

void pool_one_roi(const float* box, const LevelView& level, const float* image_features, int64_t channels,
                  int32_t out_h, int32_t out_w, float* out) {
    const int h = static_cast<int>(level.height);
    const int w = static_cast<int>(level.width);
    const edgercnn::RoiPoolGeometry g =
        edgercnn::roi_pool_geometry(box[0], box[1], box[2], box[3], level.scale, out_h, out_w);
    const int64_t bins = static_cast<int64_t>(out_h) * out_w;
    const int64_t plane = level.height * level.width;
    for (int ph = 0; ph < out_h; ++ph) {
        int hs = 0;
        int he = 0;
        edgercnn::roi_pool_bin_range(ph, g.bin_h, g.start_h, h, hs, he);
        for (int pw = 0; pw < out_w; ++pw) {
            int ws = 0;
            int we = 0;
            edgercnn::roi_pool_bin_range(pw, g.bin_w, g.start_w, w, ws, we);
            const bool empty = (he <= hs) || (we <= ws);
            for (int64_t c = 0; c < channels; ++c) {
                const float* f = image_features + c * plane;
                float best = empty ? 0.0f : -FLT_MAX;
                for (int y = hs; y < he; ++y) {
                    for (int x = ws; x < we; ++x) {
                        const float v = f[static_cast<int64_t>(y) * w + x];
                        if (v > best) {
                            best = v;
                        }
                    }
                }
                out[c * bins + ph * out_w + pw] = best;
            }
        }
    }
}

}  // namespace

extern "C" int edgercnn_cpu_api_version(void) { return EDGERCNN_CPU_API_VERSION; }

extern "C" int edgercnn_cpu_multi_level_roi_align_f32(
    const float* rois, const float* const* features, int32_t num_levels, const int64_t* heights,
    const int64_t* widths, int64_t batch, int64_t num_rois, int64_t channels, const float* spatial_scales,
    int32_t out_h, int32_t out_w, int32_t sampling_ratio, int32_t aligned, int32_t mode, int32_t canonical_scale,
    int32_t canonical_level, float eps, float* out) {
    if (num_levels < 1 || num_levels > 5 || out_h < 1 || out_w < 1 || batch < 0 || num_rois < 0 ||
        channels < 0 || (mode != 0 && mode != 1) ||
        edgercnn::level_table_error(num_levels, 5, spatial_scales, heights, widths) != nullptr) {
        return -1;
    }
    std::vector<LevelView> levels(static_cast<size_t>(num_levels));
    for (int l = 0; l < num_levels; ++l) {
        levels[static_cast<size_t>(l)] = LevelView{features[l], heights[l], widths[l], spatial_scales[l]};
    }
    const int k_min = edgercnn::level_exponent(spatial_scales[0]);
    const int k_max = edgercnn::level_exponent(spatial_scales[num_levels - 1]);
    const int64_t roi_stride = channels * out_h * out_w;
    std::vector<Tap> taps;
    std::vector<int> tap_count;
    for (int64_t n = 0; n < batch; ++n) {
        for (int64_t r = 0; r < num_rois; ++r) {
            const float* box = rois + (n * num_rois + r) * 4;
            float* o = out + (n * num_rois + r) * roi_stride;
            const int l = edgercnn::roi_level_index(box[0], box[1], box[2], box[3], k_min, k_max,
                                                    static_cast<float>(canonical_scale),
                                                    static_cast<float>(canonical_level), eps, num_levels);
            if (l < 0) {
                for (int64_t i = 0; i < roi_stride; ++i) {
                    o[i] = 0.0f;
                }
                continue;
            }
            const LevelView& level = levels[static_cast<size_t>(l)];
            const float* image = level.data + n * channels * level.height * level.width;
            if (mode == 0) {
                align_one_roi(box, level, image, channels, out_h, out_w, sampling_ratio, aligned != 0, taps,
                              tap_count, o);
            } else {
                pool_one_roi(box, level, image, channels, out_h, out_w, o);
            }
        }
    }
    return 0;
}
