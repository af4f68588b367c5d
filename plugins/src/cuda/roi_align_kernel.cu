// Fused multi-level RoIAlign / RoIPool: one launch over every output element of every RoI; each
// thread maps its RoI to a level and samples that level (no per-level gather/scatter, no host sync).
#include <cfloat>
#include <climits>
#include <cstdint>
#include <cuda_fp16.h>

#include "../common/edgercnn_cuda_api.h"
#include "../common/roi_align_math.h"

namespace {

struct LevelTable {
    const void* data[EDGERCNN_MAX_LEVELS];
    int height[EDGERCNN_MAX_LEVELS];
    int width[EDGERCNN_MAX_LEVELS];
    float scale[EDGERCNN_MAX_LEVELS];
    int num_levels;
    int k_min;
    int k_max;
};

struct PoolParams {
    int channels;
    int out_h;
    int out_w;
    int sampling_ratio;
    int aligned;
    int mode;
    float canonical_scale;
    float canonical_level;
    float eps;
};

__device__ __forceinline__ float load_f32(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load_f32(const __half* p) { return __half2float(__ldg(p)); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }

template <typename T>
__device__ float align_bin(const T* __restrict__ f, int h, int w, const edgercnn::RoiAlignGeometry& g, int ph,
                           int pw) {
    float acc = 0.0f;
    for (int iy = 0; iy < g.grid_h; ++iy) {
        const float y = edgercnn::sample_coordinate(g.start_h, ph, g.bin_h, iy, g.grid_h);
        for (int ix = 0; ix < g.grid_w; ++ix) {
            const float x = edgercnn::sample_coordinate(g.start_w, pw, g.bin_w, ix, g.grid_w);
            edgercnn::BilinearTap t;
            if (edgercnn::bilinear_tap(y, x, h, w, t)) {
                // 64-bit row offsets: one plane may exceed 2^31 elements
                const T* low = f + static_cast<int64_t>(t.y_low) * w;
                const T* high = f + static_cast<int64_t>(t.y_high) * w;
                acc += t.w1 * load_f32(low + t.x_low) + t.w2 * load_f32(low + t.x_high) +
                       t.w3 * load_f32(high + t.x_low) + t.w4 * load_f32(high + t.x_high);
            }
        }
    }
    return acc / g.count;
}

template <typename T>
__device__ float pool_bin(const T* __restrict__ f, int h, int w, const edgercnn::RoiPoolGeometry& g, int ph,
                          int pw) {
    int hs, he, ws, we;
    edgercnn::roi_pool_bin_range(ph, g.bin_h, g.start_h, h, hs, he);
    edgercnn::roi_pool_bin_range(pw, g.bin_w, g.start_w, w, ws, we);
    if (he <= hs || we <= ws) {
        return 0.0f;
    }
    float best = -FLT_MAX;
    for (int y = hs; y < he; ++y) {
        for (int x = ws; x < we; ++x) {
            const float v = load_f32(f + static_cast<int64_t>(y) * w + x);
            best = v > best ? v : best;
        }
    }
    return best;
}

// Output element order: [N, R, C, out_h, out_w], innermost pw. Index (the output index and its
// div/mod) is int32 when total + grid stride fits, else int64; memory offsets are always int64.
// T: features and output (float or half); R: rois (float in the TensorRT plugin, float or half
// through the C API).
template <typename T, typename R, typename Index>
__global__ void multi_level_roi_align_kernel(const R* __restrict__ rois, LevelTable levels, PoolParams p,
                                             Index num_rois, Index total, T* __restrict__ out) {
    const Index stride = static_cast<Index>(blockDim.x) * gridDim.x;
    for (Index idx = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int pw = static_cast<int>(idx % p.out_w);
        const int ph = static_cast<int>((idx / p.out_w) % p.out_h);
        const Index chw = idx / (static_cast<Index>(p.out_w) * p.out_h);
        const int c = static_cast<int>(chw % p.channels);
        const Index roi = chw / p.channels;
        const Index n = roi / num_rois;
        const R* box = rois + static_cast<int64_t>(roi) * 4;
        const float x1 = load_f32(box);
        const float y1 = load_f32(box + 1);
        const float x2 = load_f32(box + 2);
        const float y2 = load_f32(box + 3);
        const int level = edgercnn::roi_level_index(x1, y1, x2, y2, levels.k_min, levels.k_max, p.canonical_scale,
                                                    p.canonical_level, p.eps, levels.num_levels);
        float value = 0.0f;
        if (level >= 0) {
            int h = levels.height[0];
            int w = levels.width[0];
            float scale = levels.scale[0];
            const T* base = static_cast<const T*>(levels.data[0]);
#pragma unroll
            for (int l = 1; l < EDGERCNN_MAX_LEVELS; ++l) {  // select without dynamic indexing of params
                if (l == level) {
                    h = levels.height[l];
                    w = levels.width[l];
                    scale = levels.scale[l];
                    base = static_cast<const T*>(levels.data[l]);
                }
            }
            const T* f = base + (static_cast<int64_t>(n) * p.channels + c) * (static_cast<int64_t>(h) * w);
            if (p.mode == 0) {
                const edgercnn::RoiAlignGeometry g = edgercnn::roi_align_geometry(
                    x1, y1, x2, y2, scale, p.out_h, p.out_w, p.sampling_ratio, p.aligned != 0);
                value = align_bin(f, h, w, g, ph, pw);
            } else {
                const edgercnn::RoiPoolGeometry g =
                    edgercnn::roi_pool_geometry(x1, y1, x2, y2, scale, p.out_h, p.out_w);
                value = pool_bin(f, h, w, g, ph, pw);
            }
        }
        store(out + idx, value);
    }
}

template <typename T, typename R>
int launch(const void* rois, const LevelTable& levels, const PoolParams& p, int64_t num_rois, int64_t total,
           void* out, cudaStream_t stream) {
    if (total == 0) {
        return 0;
    }
    constexpr int kThreads = 256;
    const int64_t wanted = (total + kThreads - 1) / kThreads;
    const int blocks = static_cast<int>(wanted < (1 << 20) ? wanted : (1 << 20));
    const int64_t stride = static_cast<int64_t>(blocks) * kThreads;
    // int32 only if the grid-stride loop's last increment (idx + stride) cannot overflow either.
    if (total + stride <= INT32_MAX) {
        multi_level_roi_align_kernel<T, R, int32_t><<<blocks, kThreads, 0, stream>>>(
            static_cast<const R*>(rois), levels, p, static_cast<int32_t>(num_rois), static_cast<int32_t>(total),
            static_cast<T*>(out));
    } else {
        multi_level_roi_align_kernel<T, R, int64_t><<<blocks, kThreads, 0, stream>>>(
            static_cast<const R*>(rois), levels, p, num_rois, total, static_cast<T*>(out));
    }
    return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" int edgercnn_cuda_api_version(void) { return EDGERCNN_CUDA_API_VERSION; }

extern "C" int edgercnn_cuda_multi_level_roi_align(int32_t dtype, int32_t rois_dtype, const void* rois,
                                                   const void* const* features,
                                                   int32_t num_levels, const int64_t* heights, const int64_t* widths,
                                                   int64_t batch, int64_t num_rois, int64_t channels,
                                                   const float* spatial_scales, int32_t out_h, int32_t out_w,
                                                   int32_t sampling_ratio, int32_t aligned, int32_t mode,
                                                   int32_t canonical_scale, int32_t canonical_level, float eps,
                                                   void* out, cudaStream_t stream) {
    if (num_levels < 1 || num_levels > EDGERCNN_MAX_LEVELS || out_h < 1 || out_w < 1 || batch < 0 ||
        num_rois < 0 || channels < 0 || channels > INT32_MAX || (mode != 0 && mode != 1) ||
        (dtype != EDGERCNN_FLOAT32 && dtype != EDGERCNN_FLOAT16) ||
        (rois_dtype != EDGERCNN_FLOAT32 && rois_dtype != EDGERCNN_FLOAT16) ||
        edgercnn::level_table_error(num_levels, EDGERCNN_MAX_LEVELS, spatial_scales, heights, widths) != nullptr) {
        return -1;
    }
    // total = N * R * C * out_h * out_w must fit int64 (each factor is checked, the product here)
    const double elements = static_cast<double>(batch) * num_rois * channels * out_h * out_w;
    if (elements > static_cast<double>(INT64_MAX / 2)) {
        return -3;
    }
    LevelTable levels{};
    for (int l = 0; l < EDGERCNN_MAX_LEVELS; ++l) {
        const int s = l < num_levels ? l : 0;  // unused slots repeat level 0
        levels.data[l] = features[s];
        levels.height[l] = static_cast<int>(heights[s]);
        levels.width[l] = static_cast<int>(widths[s]);
        levels.scale[l] = spatial_scales[s];
    }
    levels.num_levels = num_levels;
    levels.k_min = edgercnn::level_exponent(spatial_scales[0]);
    levels.k_max = edgercnn::level_exponent(spatial_scales[num_levels - 1]);
    const PoolParams p{static_cast<int>(channels), out_h, out_w, sampling_ratio, aligned, mode,
                       static_cast<float>(canonical_scale), static_cast<float>(canonical_level), eps};
    const int64_t total = batch * num_rois * channels * out_h * out_w;
    const bool rois_f32 = rois_dtype == EDGERCNN_FLOAT32;
    if (dtype == EDGERCNN_FLOAT32) {
        return rois_f32 ? launch<float, float>(rois, levels, p, num_rois, total, out, stream)
                        : launch<float, __half>(rois, levels, p, num_rois, total, out, stream);
    }
    return rois_f32 ? launch<__half, float>(rois, levels, p, num_rois, total, out, stream)
                    : launch<__half, __half>(rois, levels, p, num_rois, total, out, stream);
}
