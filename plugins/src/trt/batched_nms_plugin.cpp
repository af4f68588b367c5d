#include "batched_nms_plugin.h"

#include <cmath>
#include <cstdint>
#include <new>
#include <string>

#include "../common/edgercnn_cuda_api.h"
#include "plugin_common.h"

namespace edgercnn {
namespace trt {

using namespace nvinfer1;

namespace {
constexpr char const* kName = "EdgeRCNN_BatchedNMS";

int64_t effective(int64_t boxes, int32_t pre_nms_top_n) {
    return (pre_nms_top_n >= 0 && pre_nms_top_n < boxes) ? pre_nms_top_n : boxes;
}
}  // namespace

size_t nms_workspace_for_profile(NmsWorkspaceProfile const& profile, int32_t pre_nms_top_n) noexcept {
    if (profile.max_batch < 0 || profile.min_boxes < 0 || profile.max_boxes < profile.min_boxes) {
        return SIZE_MAX;
    }
    // enqueue picks the algorithm from the runtime shape (EDGERCNN_NMS_AUTO); cover every shape in
    // [min, max]: the greedy path at the largest B, and the bitmask path wherever it can be chosen.
    int64_t const max_n = profile.max_batch;
    int64_t const max_b = profile.max_boxes;
    size_t bytes = edgercnn_cuda_batched_nms_workspace_size(max_n, max_b, pre_nms_top_n, EDGERCNN_NMS_AUTO);
    if (bytes == SIZE_MAX) {
        return SIZE_MAX;
    }
    int64_t const min_eff = effective(profile.min_boxes, pre_nms_top_n);
    if (min_eff <= EDGERCNN_NMS_MASK_MAX_BOXES && effective(max_b, pre_nms_top_n) > EDGERCNN_NMS_MASK_MAX_BOXES) {
        int64_t const b = max_b < EDGERCNN_NMS_MASK_MAX_BOXES ? max_b : EDGERCNN_NMS_MASK_MAX_BOXES;
        size_t const mask_bytes = edgercnn_cuda_batched_nms_workspace_size(max_n, b, pre_nms_top_n, EDGERCNN_NMS_BITMASK);
        if (mask_bytes == SIZE_MAX) {
            return SIZE_MAX;
        }
        bytes = mask_bytes > bytes ? mask_bytes : bytes;
    }
    return bytes;
}

BatchedNMSPlugin::BatchedNMSPlugin(NmsAttributes attributes, NmsWorkspaceProfile profile)
    : mAttrs(attributes), mProfile(profile) {}

BatchedNMSPlugin::BatchedNMSPlugin(BatchedNMSPlugin const& other)
    : IPluginV3(other), IPluginV3OneCore(other), IPluginV3OneBuild(other), IPluginV3OneRuntime(other),
      mAttrs(other.mAttrs), mProfile(other.mProfile) {}

IPluginCapability* BatchedNMSPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* BatchedNMSPlugin::clone() noexcept { return new (std::nothrow) BatchedNMSPlugin(*this); }

char const* BatchedNMSPlugin::getPluginName() const noexcept { return kName; }
char const* BatchedNMSPlugin::getPluginVersion() const noexcept { return kPluginVersion; }
char const* BatchedNMSPlugin::getPluginNamespace() const noexcept { return kPluginNamespace; }

int32_t BatchedNMSPlugin::getNbOutputs() const noexcept { return 2; }

int32_t BatchedNMSPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                          DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    if (nbInputs != 3 || nbOutputs != 2 || in[0].desc.dims.nbDims != 3 || in[1].desc.dims.nbDims != 2 ||
        in[2].desc.dims.nbDims != 2 || in[0].max.nbDims != 3) {
        log_error(std::string(kName) + ": expected boxes [N, B, 4], scores [N, B], idxs [N, B] and 2 outputs");
        return -1;
    }
    // The bounds getWorkspaceSize sizes the workspace for; serialized so enqueue knows what it got.
    mProfile.max_batch = in[0].max.d[0];
    mProfile.max_boxes = in[0].max.d[1];
    mProfile.min_boxes = in[0].min.nbDims == 3 ? in[0].min.d[1] : 0;
    return 0;
}

bool BatchedNMSPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                 int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != 3 || nbOutputs != 2 || pos < 0 || pos >= 5) {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR) {
        return false;
    }
    // Boxes and scores stay FP32 whatever the build precision: FP16 coordinates are 0.5-1 px off
    // above 512/1024 (IoUs change) and FP16 scores tie where FP32 ones do not (the order changes).
    switch (pos) {
    case 0: return desc.type == DataType::kFLOAT;
    case 1: return desc.type == DataType::kFLOAT;
    case 2: return desc.type == DataType::kINT64 || desc.type == DataType::kINT32;
    default: return desc.type == DataType::kINT64;
    }
}

int32_t BatchedNMSPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* /*inputTypes*/,
                                             int32_t nbInputs) const noexcept {
    if (nbOutputs != 2 || nbInputs != 3) {
        return -1;
    }
    outputTypes[0] = DataType::kINT64;
    outputTypes[1] = DataType::kINT64;
    return 0;
}

int32_t BatchedNMSPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                                          int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                                          IExprBuilder& exprBuilder) noexcept {
    if (nbInputs != 3 || nbOutputs != 2 || inputs[0].nbDims != 3) {
        return -1;
    }
    outputs[0].nbDims = 2;
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = exprBuilder.constant(mAttrs.max_output);
    outputs[1].nbDims = 1;
    outputs[1].d[0] = inputs[0].d[0];
    return 0;
}

size_t BatchedNMSPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                          DynamicPluginTensorDesc const* /*outputs*/,
                                          int32_t /*nbOutputs*/) const noexcept {
    if (nbInputs != 3 || inputs[0].max.nbDims != 3) {
        return 0;
    }
    NmsWorkspaceProfile const profile{inputs[0].max.d[0], inputs[0].min.nbDims == 3 ? inputs[0].min.d[1] : 0,
                                      inputs[0].max.d[1]};
    size_t const bytes = nms_workspace_for_profile(profile, mAttrs.pre_nms_top_n);
    if (bytes == SIZE_MAX) {
        log_error(std::string(kName) + ": cannot size the workspace (cub's size query failed, or bad shapes)");
    }
    return bytes;  // SIZE_MAX makes the build fail loudly instead of under-allocating
}

int32_t BatchedNMSPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/,
                                        int32_t /*nbOutputs*/) noexcept {
    if (nbInputs != 3 || in[0].dims.nbDims != 3 || in[0].dims.d[2] != 4 || in[1].dims.nbDims != 2 ||
        in[1].dims.d[0] != in[0].dims.d[0] || in[1].dims.d[1] != in[0].dims.d[1] || in[2].dims.nbDims != 2 ||
        in[2].dims.d[0] != in[0].dims.d[0] || in[2].dims.d[1] != in[0].dims.d[1]) {
        log_error(std::string(kName) + ": boxes must be [N, B, 4] and scores, idxs [N, B]");
        return -1;
    }
    return 0;
}

int32_t BatchedNMSPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                  void const* const* inputs, void* const* outputs, void* workspace,
                                  cudaStream_t stream) noexcept {
    int64_t const n = inputDesc[0].dims.d[0];
    int64_t const b = inputDesc[0].dims.d[1];
    if (inputDesc[0].type != DataType::kFLOAT || inputDesc[1].type != DataType::kFLOAT) {
        log_error(std::string(kName) + ": boxes and scores must be FP32");
        return -1;
    }
    // What TensorRT allocated is what getWorkspaceSize returned for the build profile; the kernel
    // checks its own need against that, never against itself.
    size_t const granted = nms_workspace_for_profile(mProfile, mAttrs.pre_nms_top_n);
    if (granted == SIZE_MAX || n > mProfile.max_batch || b > mProfile.max_boxes) {
        log_error(std::string(kName) + ": shape [" + std::to_string(n) + ", " + std::to_string(b) +
                  "] outside the build profile, or the workspace TensorRT allocated is unknown; rebuild the engine");
        return -2;
    }
    int32_t const idx_dtype = inputDesc[2].type == DataType::kINT32 ? EDGERCNN_INT32 : EDGERCNN_INT64;
    int const status = edgercnn_cuda_batched_nms(
        EDGERCNN_FLOAT32, idx_dtype, inputs[0], inputs[1], inputs[2], n, b, static_cast<double>(mAttrs.iou_threshold),
        mAttrs.score_threshold, mAttrs.max_output, mAttrs.pre_nms_top_n, static_cast<int64_t*>(outputs[0]),
        static_cast<int64_t*>(outputs[1]), workspace, granted, EDGERCNN_NMS_AUTO, stream);
    if (status != 0) {
        log_error(std::string(kName) + ": kernel launch failed with status " + std::to_string(status));
    }
    return status;
}

IPluginV3* BatchedNMSPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept { return clone(); }

PluginFieldCollection const* BatchedNMSPlugin::getFieldsToSerialize() noexcept {
    mSerialized.clear();
    mSerialized.emplace_back("iou_threshold", &mAttrs.iou_threshold, PluginFieldType::kFLOAT32, 1);
    mSerialized.emplace_back("score_threshold", &mAttrs.score_threshold, PluginFieldType::kFLOAT32, 1);
    mSerialized.emplace_back("max_output", &mAttrs.max_output, PluginFieldType::kINT32, 1);
    mSerialized.emplace_back("pre_nms_top_n", &mAttrs.pre_nms_top_n, PluginFieldType::kINT32, 1);
    // not ONNX attributes: the build profile the workspace was sized for (see NmsWorkspaceProfile)
    mSerialized.emplace_back("workspace_max_batch", &mProfile.max_batch, PluginFieldType::kINT64, 1);
    mSerialized.emplace_back("workspace_min_boxes", &mProfile.min_boxes, PluginFieldType::kINT64, 1);
    mSerialized.emplace_back("workspace_max_boxes", &mProfile.max_boxes, PluginFieldType::kINT64, 1);
    mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
    mSerializedCollection.fields = mSerialized.data();
    return &mSerializedCollection;
}

BatchedNMSCreator::BatchedNMSCreator() {
    mFields.emplace_back("iou_threshold", nullptr, PluginFieldType::kFLOAT32, 1);
    mFields.emplace_back("score_threshold", nullptr, PluginFieldType::kFLOAT32, 1);
    mFields.emplace_back("max_output", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("pre_nms_top_n", nullptr, PluginFieldType::kINT32, 1);
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

char const* BatchedNMSCreator::getPluginName() const noexcept { return kName; }
char const* BatchedNMSCreator::getPluginVersion() const noexcept { return kPluginVersion; }
char const* BatchedNMSCreator::getPluginNamespace() const noexcept { return kPluginNamespace; }
PluginFieldCollection const* BatchedNMSCreator::getFieldNames() noexcept { return &mCollection; }

bool BatchedNMSCreator::parse(PluginFieldCollection const* fc, NmsAttributes& attrs,
                              NmsWorkspaceProfile& profile) noexcept {
    FieldReader const reader(fc);
    int64_t v = 0;
    reader.get_int("workspace_max_batch", profile.max_batch);
    reader.get_int("workspace_min_boxes", profile.min_boxes);
    reader.get_int("workspace_max_boxes", profile.max_boxes);
    if (!reader.get_float("iou_threshold", attrs.iou_threshold) || !reader.get_int("max_output", v)) {
        log_error(std::string(kName) + ": attributes 'iou_threshold' and 'max_output' are required");
        return false;
    }
    attrs.max_output = static_cast<int32_t>(v);
    if (reader.has("score_threshold") && !reader.get_float("score_threshold", attrs.score_threshold)) {
        log_error(std::string(kName) + ": attribute 'score_threshold' is not a number");
        return false;
    }
    if (reader.get_int("pre_nms_top_n", v)) {
        attrs.pre_nms_top_n = static_cast<int32_t>(v < 0 ? -1 : v);
    }
    if (attrs.max_output < 0 || std::isnan(attrs.iou_threshold)) {
        log_error(std::string(kName) + ": max_output must be >= 0 and iou_threshold a number");
        return false;
    }
    return true;
}

IPluginV3* BatchedNMSCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                           TensorRTPhase /*phase*/) noexcept {
    NmsAttributes attrs;
    NmsWorkspaceProfile profile;
    if (!parse(fc, attrs, profile)) {
        return nullptr;
    }
    return new (std::nothrow) BatchedNMSPlugin(attrs, profile);
}

}  // namespace trt
}  // namespace edgercnn
