// CPU batched NMS: per image, stable score-descending order, greedy suppression within equal idxs.
#include <algorithm>
#include <numeric>
#include <vector>

#include "../common/edgercnn_cpu_api.h"
#include "../common/nms_math.h"

extern "C" int edgercnn_cpu_batched_nms_f32(const float* boxes, const float* scores, const int64_t* idxs,
                                            int64_t batch, int64_t num_boxes, double iou_threshold,
                                            float score_threshold, int64_t max_output, int64_t pre_nms_top_n,
                                            int64_t* keep, int64_t* count) {
    if (batch < 0 || num_boxes < 0 || max_output < 0) {
        return -1;
    }
    const float threshold = edgercnn::float_threshold_below(iou_threshold);
    std::vector<int64_t> order;
    std::vector<float> areas(static_cast<size_t>(num_boxes));
    std::vector<unsigned char> suppressed;
    for (int64_t n = 0; n < batch; ++n) {
        const float* b = boxes + n * num_boxes * 4;
        const float* s = scores + n * num_boxes;
        const int64_t* c = idxs + n * num_boxes;
        int64_t* k = keep + n * max_output;
        order.clear();
        for (int64_t i = 0; i < num_boxes; ++i) {
            if (s[i] > score_threshold) {
                order.push_back(i);
            }
        }
        std::stable_sort(order.begin(), order.end(), [s](int64_t a, int64_t bb) {
            return edgercnn::score_sort_key(s[a]) > edgercnn::score_sort_key(s[bb]);
        });
        if (pre_nms_top_n >= 0 && static_cast<int64_t>(order.size()) > pre_nms_top_n) {
            order.resize(static_cast<size_t>(pre_nms_top_n));
        }
        for (const int64_t i : order) {
            areas[static_cast<size_t>(i)] = edgercnn::box_area(b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]);
        }
        const size_t m = order.size();
        suppressed.assign(m, 0);
        int64_t kept = 0;
        for (size_t oi = 0; oi < m && kept < max_output; ++oi) {
            if (suppressed[oi]) {
                continue;
            }
            const int64_t i = order[oi];
            k[kept++] = i;
            const float* bi = b + 4 * i;
            const float ai = areas[static_cast<size_t>(i)];
            for (size_t oj = oi + 1; oj < m; ++oj) {
                const int64_t j = order[oj];
                if (suppressed[oj] || c[j] != c[i]) {
                    continue;
                }
                const float* bj = b + 4 * j;
                const float iou = edgercnn::box_iou(bi[0], bi[1], bi[2], bi[3], ai, bj[0], bj[1], bj[2], bj[3],
                                                    areas[static_cast<size_t>(j)]);
                if (iou > threshold) {
                    suppressed[oj] = 1;
                }
            }
        }
        count[n] = kept;
        for (int64_t i = kept; i < max_output; ++i) {
            k[i] = -1;
        }
    }
    return 0;
}
