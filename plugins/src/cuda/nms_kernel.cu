// Batched NMS on the GPU, per image: score filter -> stable score-descending radix sort (cub) ->
// top-k -> suppression among equal idxs -> padded keep list and count. Suppression either builds
// an IoU bitmask per 64-box block and reduces it block by block in one CUDA block per image, or,
// when the candidates are too many for an O(B^2) bitmask, runs a greedy sweep (one CUDA block per
// image, stopping at max_output). Both give the same indices.
#include <cub/device/device_radix_sort.cuh>
#include <cooperative_groups.h>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <cuda_fp16.h>

#include <climits>
#include <cstdint>

#include "../common/edgercnn_cuda_api.h"
#include "../common/nms_math.h"

namespace {

constexpr int kBlock = 64;  // boxes per bitmask word
constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int64_t effective_boxes(int64_t num_boxes, int64_t pre_nms_top_n) {
    return (pre_nms_top_n >= 0 && pre_nms_top_n < num_boxes) ? pre_nms_top_n : num_boxes;
}

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool use_bitmask(int64_t boxes_eff, int32_t algorithm) {
    if (algorithm == EDGERCNN_NMS_GREEDY) {
        return false;
    }
    return algorithm == EDGERCNN_NMS_BITMASK || boxes_eff <= EDGERCNN_NMS_MASK_MAX_BOXES;
}

// Workspace carve-up; the same function sizes it and hands out the pointers.
struct Workspace {
    float* keys_in;
    float* keys_out;
    int32_t* vals_in;
    int32_t* vals_out;
    int32_t* offsets;       // [N + 1]
    int32_t* candidates;    // [N] boxes passing score_threshold
    float4* sorted_boxes;   // [N, B]
    int64_t* sorted_idxs;   // [N, B]
    unsigned long long* mask;  // [N, Bm, ceil(Bm / 64)] or null
    void* sort_temp;
    size_t sort_temp_bytes;
    size_t total;  // SIZE_MAX: unknown (cub's size query failed)
};

// cub's temporary storage for the sort; false when cub's size query fails (it asks the current
// device for its properties, so it fails where there is no usable device).
bool sort_temp_bytes(int64_t batch, int64_t num_boxes, size_t& bytes) {
    size_t seg = 0;
    size_t one = 0;
    const int items = static_cast<int>(batch * num_boxes);
    const cudaError_t seg_err = cub::DeviceSegmentedRadixSort::SortPairsDescending(nullptr, seg, static_cast<const float*>(nullptr),
                                                       static_cast<float*>(nullptr), static_cast<const int32_t*>(nullptr),
                                                       static_cast<int32_t*>(nullptr), items, static_cast<int>(batch),
                                                       static_cast<const int32_t*>(nullptr),
                                                       static_cast<const int32_t*>(nullptr));
    const cudaError_t one_err = cub::DeviceRadixSort::SortPairsDescending(
        nullptr, one, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
        static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), items);
    if (seg_err != cudaSuccess || one_err != cudaSuccess) {
        cudaGetLastError();  // a failed query must not leave a sticky-looking error for the caller
        return false;
    }
    bytes = seg > one ? seg : one;
    return true;
}

Workspace carve(void* base, int64_t batch, int64_t num_boxes, int64_t pre_nms_top_n, int32_t algorithm) {
    Workspace w{};
    char* p = static_cast<char*>(base);
    size_t off = 0;
    auto take = [&](size_t bytes) -> void* {
        void* ptr = p == nullptr ? nullptr : p + off;
        off += align_up(bytes);
        return ptr;
    };
    const size_t items = static_cast<size_t>(batch * num_boxes);
    w.keys_in = static_cast<float*>(take(items * sizeof(float)));
    w.keys_out = static_cast<float*>(take(items * sizeof(float)));
    w.vals_in = static_cast<int32_t*>(take(items * sizeof(int32_t)));
    w.vals_out = static_cast<int32_t*>(take(items * sizeof(int32_t)));
    w.offsets = static_cast<int32_t*>(take(static_cast<size_t>(batch + 1) * sizeof(int32_t)));
    w.candidates = static_cast<int32_t*>(take(static_cast<size_t>(batch) * sizeof(int32_t)));
    w.sorted_boxes = static_cast<float4*>(take(items * sizeof(float4)));
    w.sorted_idxs = static_cast<int64_t*>(take(items * sizeof(int64_t)));
    const int64_t eff = effective_boxes(num_boxes, pre_nms_top_n);
    if (use_bitmask(eff, algorithm)) {
        const size_t words = static_cast<size_t>(batch * eff * div_up(eff, kBlock));
        w.mask = static_cast<unsigned long long*>(take(words * sizeof(unsigned long long)));
    }
    if (!sort_temp_bytes(batch, num_boxes, w.sort_temp_bytes)) {
        w.total = SIZE_MAX;
        return w;
    }
    w.sort_temp = take(w.sort_temp_bytes);
    w.total = off;
    return w;
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T>
__global__ void prepare_keys_kernel(const T* __restrict__ scores, int32_t batch, int32_t num_boxes,
                                    float score_threshold, float* keys, int32_t* vals, int32_t* offsets,
                                    int32_t* candidates) {
    // 64-bit loop index: i + stride may pass INT32_MAX even though every i < total fits int32
    const int64_t total = static_cast<int64_t>(batch) * num_boxes;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float s = to_f32(scores[i]);
        const bool pass = s > score_threshold;
        keys[i] = pass ? edgercnn::score_sort_key(s) : -INFINITY;
        vals[i] = static_cast<int32_t>(i % num_boxes);
        if (pass) {
            // One atomic per warp and image instead of one per box (sm_70+: labeled_partition).
            const int32_t n = static_cast<int32_t>(i / num_boxes);
            cooperative_groups::coalesced_group passing = cooperative_groups::coalesced_threads();
            cooperative_groups::coalesced_group same_image = cooperative_groups::labeled_partition(passing, n);
            if (same_image.thread_rank() == 0) {
                atomicAdd(candidates + n, static_cast<int32_t>(same_image.size()));
            }
        }
    }
    for (int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; n <= batch; n += stride) {
        offsets[n] = static_cast<int32_t>(n * num_boxes);  // segment n is [offsets[n], offsets[n + 1])
    }
}

// Sorted candidate boxes/idxs of each image, first `eff` rows (eff = min(candidates, pre_nms_top_n)).
template <typename T, typename I>
__global__ void gather_sorted_kernel(const T* __restrict__ boxes, const I* __restrict__ idxs,
                                     const int32_t* __restrict__ order, const int32_t* __restrict__ candidates,
                                     int32_t batch, int32_t num_boxes, int32_t pre_nms_top_n, float4* sorted_boxes,
                                     int64_t* sorted_idxs) {
    const int64_t total = static_cast<int64_t>(batch) * num_boxes;
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int32_t n = static_cast<int32_t>(i / num_boxes);
        const int32_t r = static_cast<int32_t>(i % num_boxes);
        int32_t eff = candidates[n];
        if (pre_nms_top_n >= 0 && pre_nms_top_n < eff) {
            eff = pre_nms_top_n;
        }
        if (r >= eff) {
            continue;
        }
        const int64_t src = static_cast<int64_t>(n) * num_boxes + order[i];
        const T* b = boxes + src * 4;
        sorted_boxes[i] = make_float4(to_f32(b[0]), to_f32(b[1]), to_f32(b[2]), to_f32(b[3]));
        sorted_idxs[i] = static_cast<int64_t>(idxs[src]);
    }
}

__device__ __forceinline__ int32_t image_eff(const int32_t* candidates, int32_t n, int32_t pre_nms_top_n) {
    const int32_t c = candidates[n];
    return (pre_nms_top_n >= 0 && pre_nms_top_n < c) ? pre_nms_top_n : c;
}

__device__ __forceinline__ bool suppresses(const float4& a, float area_a, int64_t ia, const float4& b, int64_t ib,
                                           float threshold) {
    if (ia != ib) {
        return false;
    }
    const float area_b = edgercnn::box_area(b.x, b.y, b.z, b.w);
    return edgercnn::box_iou(a.x, a.y, a.z, a.w, area_a, b.x, b.y, b.z, b.w, area_b) > threshold;
}

// grid (col_blocks, col_blocks, N), block 64: bit j of mask[n][i][cb] = box cb*64+j suppressed by box i.
__global__ void iou_mask_kernel(const float4* __restrict__ sorted_boxes, const int64_t* __restrict__ sorted_idxs,
                                const int32_t* __restrict__ candidates, int32_t num_boxes, int32_t mask_rows,
                                int32_t pre_nms_top_n, float threshold, unsigned long long* mask) {
    const int32_t n = blockIdx.z;
    const int32_t row_block = blockIdx.y;
    const int32_t col_block = blockIdx.x;
    if (col_block < row_block) {
        return;
    }
    const int32_t eff = image_eff(candidates, n, pre_nms_top_n);
    const int32_t rows = min(eff - row_block * kBlock, kBlock);
    const int32_t cols = min(eff - col_block * kBlock, kBlock);
    if (rows <= 0 || cols <= 0) {
        return;
    }
    __shared__ float4 col_boxes[kBlock];
    __shared__ int64_t col_idxs[kBlock];
    const float4* img_boxes = sorted_boxes + static_cast<int64_t>(n) * num_boxes;
    const int64_t* img_idxs = sorted_idxs + static_cast<int64_t>(n) * num_boxes;
    if (threadIdx.x < cols) {
        col_boxes[threadIdx.x] = img_boxes[col_block * kBlock + threadIdx.x];
        col_idxs[threadIdx.x] = img_idxs[col_block * kBlock + threadIdx.x];
    }
    __syncthreads();
    if (threadIdx.x >= rows) {
        return;
    }
    const int32_t i = row_block * kBlock + threadIdx.x;
    const float4 a = img_boxes[i];
    const int64_t ia = img_idxs[i];
    const float area_a = edgercnn::box_area(a.x, a.y, a.z, a.w);
    unsigned long long bits = 0;
    const int start = (row_block == col_block) ? threadIdx.x + 1 : 0;
    for (int j = start; j < cols; ++j) {
        if (suppresses(a, area_a, ia, col_boxes[j], col_idxs[j], threshold)) {
            bits |= 1ULL << j;
        }
    }
    const int32_t col_blocks = (mask_rows + kBlock - 1) / kBlock;
    mask[(static_cast<int64_t>(n) * mask_rows + i) * col_blocks + col_block] = bits;
}

// One block per image: walks the sorted boxes 64 at a time; the within-block decisions are
// sequential (one thread, bits in shared memory), the OR of kept rows into later words is parallel.
__global__ void reduce_mask_kernel(const unsigned long long* __restrict__ mask, const int32_t* __restrict__ order,
                                   const int32_t* __restrict__ candidates, int32_t num_boxes, int32_t mask_rows,
                                   int32_t pre_nms_top_n, int32_t max_output, int64_t* keep, int64_t* count) {
    extern __shared__ unsigned long long removed[];
    __shared__ unsigned long long diagonal[kBlock];
    __shared__ int32_t kept_in_block[kBlock];
    __shared__ int32_t num_kept_in_block;
    __shared__ int32_t kept;
    const int32_t n = blockIdx.x;
    const int32_t eff = image_eff(candidates, n, pre_nms_top_n);
    const int32_t col_blocks = (mask_rows + kBlock - 1) / kBlock;
    const int32_t used_blocks = (eff + kBlock - 1) / kBlock;
    const unsigned long long* img_mask = mask + static_cast<int64_t>(n) * mask_rows * col_blocks;
    const int32_t* img_order = order + static_cast<int64_t>(n) * num_boxes;
    int64_t* img_keep = keep + static_cast<int64_t>(n) * max_output;
    for (int32_t w = threadIdx.x; w < used_blocks; w += blockDim.x) {
        removed[w] = 0;
    }
    if (threadIdx.x == 0) {
        kept = 0;
    }
    __syncthreads();
    for (int32_t cb = 0; cb < used_blocks; ++cb) {
        if (kept >= max_output) {
            break;
        }
        const int32_t in_block = min(eff - cb * kBlock, kBlock);
        if (threadIdx.x < in_block) {
            diagonal[threadIdx.x] = img_mask[static_cast<int64_t>(cb * kBlock + threadIdx.x) * col_blocks + cb];
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long word = removed[cb];
            int32_t k = kept;
            int32_t m = 0;
            for (int t = 0; t < in_block && k < max_output; ++t) {
                if (!((word >> t) & 1ULL)) {
                    img_keep[k++] = img_order[cb * kBlock + t];
                    kept_in_block[m++] = t;
                    word |= diagonal[t];
                }
            }
            kept = k;
            num_kept_in_block = m;
        }
        __syncthreads();
        // OR the rows of this block's kept boxes into the later words: all (row, word) pairs in
        // parallel so that the global loads overlap instead of queuing behind each other.
        const int32_t later = used_blocks - cb - 1;
        const int32_t pairs = num_kept_in_block * later;
        for (int32_t p = threadIdx.x; p < pairs; p += blockDim.x) {
            const int32_t t = kept_in_block[p / later];
            const int32_t w = cb + 1 + p % later;
            atomicOr(removed + w, img_mask[static_cast<int64_t>(cb * kBlock + t) * col_blocks + w]);
        }
        __syncthreads();
    }
    for (int32_t k = kept + threadIdx.x; k < max_output; k += blockDim.x) {
        img_keep[k] = -1;
    }
    if (threadIdx.x == 0) {
        count[n] = kept;
    }
}

// One block per image without a bitmask: pick the next unsuppressed box, suppress in parallel.
__global__ void greedy_nms_kernel(const float4* __restrict__ sorted_boxes, const int64_t* __restrict__ sorted_idxs,
                                  const int32_t* __restrict__ order, const int32_t* __restrict__ candidates,
                                  int32_t num_boxes, int32_t pre_nms_top_n, int32_t max_output, float threshold,
                                  int64_t* keep, int64_t* count) {
    extern __shared__ unsigned int suppressed[];
    __shared__ int32_t current;
    const int32_t n = blockIdx.x;
    const int32_t eff = image_eff(candidates, n, pre_nms_top_n);
    const int32_t words = (eff + 31) / 32;
    const float4* img_boxes = sorted_boxes + static_cast<int64_t>(n) * num_boxes;
    const int64_t* img_idxs = sorted_idxs + static_cast<int64_t>(n) * num_boxes;
    const int32_t* img_order = order + static_cast<int64_t>(n) * num_boxes;
    int64_t* img_keep = keep + static_cast<int64_t>(n) * max_output;
    for (int32_t w = threadIdx.x; w < words; w += blockDim.x) {
        suppressed[w] = 0;
    }
    __syncthreads();
    int32_t kept = 0;
    int32_t next = 0;
    while (kept < max_output) {
        if (threadIdx.x == 0) {
            int32_t found = -1;
            for (int32_t w = next / 32; w < words && found < 0; ++w) {
                unsigned int free_bits = ~suppressed[w];
                if (w == next / 32) {
                    free_bits &= ~0u << (next % 32);
                }
                if (free_bits != 0) {
                    const int32_t i = w * 32 + __ffs(static_cast<int>(free_bits)) - 1;
                    found = i < eff ? i : -1;
                    if (i >= eff) {
                        break;
                    }
                }
            }
            current = found;
        }
        __syncthreads();
        const int32_t i = current;
        if (i < 0) {
            break;
        }
        if (threadIdx.x == 0) {
            img_keep[kept] = img_order[i];
        }
        ++kept;
        next = i + 1;
        const float4 a = img_boxes[i];
        const int64_t ia = img_idxs[i];
        const float area_a = edgercnn::box_area(a.x, a.y, a.z, a.w);
        for (int32_t j = i + 1 + threadIdx.x; j < eff; j += blockDim.x) {
            if (!((suppressed[j / 32] >> (j % 32)) & 1u) && suppresses(a, area_a, ia, img_boxes[j], img_idxs[j], threshold)) {
                atomicOr(suppressed + j / 32, 1u << (j % 32));
            }
        }
        __syncthreads();
    }
    for (int32_t k = kept + threadIdx.x; k < max_output; k += blockDim.x) {
        img_keep[k] = -1;
    }
    if (threadIdx.x == 0) {
        count[n] = kept;
    }
}

template <typename T, typename I>
int run_nms(const void* boxes, const void* scores, const void* idxs, int64_t batch, int64_t num_boxes,
            double iou_threshold, float score_threshold, int64_t max_output, int64_t pre_nms_top_n, int64_t* keep,
            int64_t* count, void* workspace, int32_t algorithm, cudaStream_t stream) {
    Workspace w = carve(workspace, batch, num_boxes, pre_nms_top_n, algorithm);
    const int32_t nb = static_cast<int32_t>(batch);
    const int32_t b = static_cast<int32_t>(num_boxes);
    const int32_t pre = static_cast<int32_t>(pre_nms_top_n < 0 ? -1 : (pre_nms_top_n < num_boxes ? pre_nms_top_n : num_boxes));
    const int32_t k = static_cast<int32_t>(max_output);
    const float threshold = edgercnn::float_threshold_below(iou_threshold);
    const int32_t items = nb * b;
    constexpr int kThreads = 256;
    const int grid = static_cast<int>(div_up(items > nb + 1 ? items : nb + 1, kThreads));
    cudaError_t err = cudaMemsetAsync(w.candidates, 0, static_cast<size_t>(nb) * sizeof(int32_t), stream);
    if (err != cudaSuccess) {
        return static_cast<int>(err);
    }
    prepare_keys_kernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(scores), nb, b, score_threshold,
                                                          w.keys_in, w.vals_in, w.offsets, w.candidates);
    if (items > 0) {
        size_t temp = w.sort_temp_bytes;
        if (nb == 1) {
            err = cub::DeviceRadixSort::SortPairsDescending(w.sort_temp, temp, w.keys_in, w.keys_out, w.vals_in,
                                                            w.vals_out, items, 0, 32, stream);
        } else {
            err = cub::DeviceSegmentedRadixSort::SortPairsDescending(w.sort_temp, temp, w.keys_in, w.keys_out,
                                                                     w.vals_in, w.vals_out, items, nb, w.offsets,
                                                                     w.offsets + 1, 0, 32, stream);
        }
        if (err != cudaSuccess) {
            return static_cast<int>(err);
        }
        gather_sorted_kernel<T, I><<<grid, kThreads, 0, stream>>>(
            static_cast<const T*>(boxes), static_cast<const I*>(idxs), w.vals_out, w.candidates, nb, b, pre,
            w.sorted_boxes, w.sorted_idxs);
    }
    const int64_t eff = effective_boxes(num_boxes, pre_nms_top_n);
    if (w.mask != nullptr) {
        const int32_t rows = static_cast<int32_t>(eff);
        const int32_t col_blocks = static_cast<int32_t>(div_up(eff, kBlock));
        if (col_blocks > 0 && items > 0) {
            const dim3 mask_grid(col_blocks, col_blocks, nb);
            iou_mask_kernel<<<mask_grid, kBlock, 0, stream>>>(w.sorted_boxes, w.sorted_idxs, w.candidates, b, rows,
                                                              pre, threshold, w.mask);
        }
        const size_t shared = static_cast<size_t>(col_blocks > 0 ? col_blocks : 1) * sizeof(unsigned long long);
        if (nb > 0) {
            reduce_mask_kernel<<<nb, 512, shared, stream>>>(w.mask, w.vals_out, w.candidates, b, rows, pre, k, keep,
                                                            count);
        }
    } else {
        const size_t shared = static_cast<size_t>(div_up(eff > 0 ? eff : 1, 32)) * sizeof(unsigned int);
        if (shared > 48 * 1024) {
            return -3;
        }
        if (nb > 0) {
            greedy_nms_kernel<<<nb, 1024, shared, stream>>>(w.sorted_boxes, w.sorted_idxs, w.vals_out, w.candidates,
                                                            b, pre, k, threshold, keep, count);
        }
    }
    return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" size_t edgercnn_cuda_batched_nms_workspace_size(int64_t batch, int64_t num_boxes, int64_t pre_nms_top_n,
                                                           int32_t algorithm) {
    if (batch < 0 || num_boxes < 0 || batch * num_boxes >= INT32_MAX) {
        return SIZE_MAX;
    }
    return carve(nullptr, batch, num_boxes, pre_nms_top_n, algorithm).total;
}

extern "C" int edgercnn_cuda_batched_nms(int32_t dtype, int32_t idx_dtype, const void* boxes, const void* scores,
                                         const void* idxs, int64_t batch, int64_t num_boxes, double iou_threshold,
                                         float score_threshold, int64_t max_output, int64_t pre_nms_top_n,
                                         int64_t* keep, int64_t* count, void* workspace, size_t workspace_size,
                                         int32_t algorithm, cudaStream_t stream) {
    if (batch < 0 || num_boxes < 0 || max_output < 0 || batch * num_boxes >= INT32_MAX || batch > 65535 ||
        (dtype != EDGERCNN_FLOAT32 && dtype != EDGERCNN_FLOAT16) ||
        (idx_dtype != EDGERCNN_INT64 && idx_dtype != EDGERCNN_INT32) || algorithm < 0 || algorithm > 2) {
        return -1;
    }
    const size_t needed = edgercnn_cuda_batched_nms_workspace_size(batch, num_boxes, pre_nms_top_n, algorithm);
    if (needed == SIZE_MAX) {
        return -4;  // cub could not size its sort (see edgercnn_cuda_api.h)
    }
    if (workspace_size < needed) {
        return -2;
    }
    if (dtype == EDGERCNN_FLOAT32) {
        return idx_dtype == EDGERCNN_INT64
                   ? run_nms<float, int64_t>(boxes, scores, idxs, batch, num_boxes, iou_threshold, score_threshold,
                                             max_output, pre_nms_top_n, keep, count, workspace, algorithm, stream)
                   : run_nms<float, int32_t>(boxes, scores, idxs, batch, num_boxes, iou_threshold, score_threshold,
                                             max_output, pre_nms_top_n, keep, count, workspace, algorithm, stream);
    }
    return idx_dtype == EDGERCNN_INT64
               ? run_nms<__half, int64_t>(boxes, scores, idxs, batch, num_boxes, iou_threshold, score_threshold,
                                          max_output, pre_nms_top_n, keep, count, workspace, algorithm, stream)
               : run_nms<__half, int32_t>(boxes, scores, idxs, batch, num_boxes, iou_threshold, score_threshold,
                                          max_output, pre_nms_top_n, keep, count, workspace, algorithm, stream);
}
