#include "multi_level_roi_align_plugin.h"

#include <cmath>
#include <new>
#include <utility>

#include "../common/edgercnn_cuda_api.h"
#include "../common/roi_align_math.h"
#include "plugin_common.h"

namespace edgercnn {
namespace trt {

using namespace nvinfer1;

namespace {
constexpr char const* kName = "EdgeRCNN_MultiLevelRoIAlign";
}

MultiLevelRoIAlignPlugin::MultiLevelRoIAlignPlugin(RoiAlignAttributes attributes) : mAttrs(std::move(attributes)) {}

MultiLevelRoIAlignPlugin::MultiLevelRoIAlignPlugin(MultiLevelRoIAlignPlugin const& other)
    : IPluginV3(other), IPluginV3OneCore(other), IPluginV3OneBuild(other), IPluginV3OneRuntime(other),
      mAttrs(other.mAttrs) {}

IPluginCapability* MultiLevelRoIAlignPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* MultiLevelRoIAlignPlugin::clone() noexcept { return new (std::nothrow) MultiLevelRoIAlignPlugin(*this); }

char const* MultiLevelRoIAlignPlugin::getPluginName() const noexcept { return kName; }
char const* MultiLevelRoIAlignPlugin::getPluginVersion() const noexcept { return kPluginVersion; }
char const* MultiLevelRoIAlignPlugin::getPluginNamespace() const noexcept { return kPluginNamespace; }

int32_t MultiLevelRoIAlignPlugin::getNbOutputs() const noexcept { return 1; }

int32_t MultiLevelRoIAlignPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                                  DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    if (nbInputs != numLevels() + 1 || nbOutputs != 1) {
        log_error(std::string(kName) + ": expected " + std::to_string(numLevels() + 1) +
                  " inputs (rois + one feature map per spatial scale) and 1 output");
        return -1;
    }
    if (in[0].desc.dims.nbDims != 3) {
        log_error(std::string(kName) + ": rois must be [N, R, 4]");
        return -1;
    }
    for (int32_t i = 1; i < nbInputs; ++i) {
        if (in[i].desc.dims.nbDims != 4) {
            log_error(std::string(kName) + ": feature maps must be [N, C, H, W]");
            return -1;
        }
    }
    return 0;
}

bool MultiLevelRoIAlignPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                         int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (pos < 0 || pos >= nbInputs + nbOutputs) {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (!is_linear_float(desc)) {
        return false;
    }
    // RoIs stay FP32 whatever the build precision: FP16 coordinates are 0.5 px apart above 512 and
    // 1 px above 1024, which moves every sample. Features may be HALF (one type for all levels),
    // and the output takes the features' type.
    if (pos == 0) {
        return desc.type == DataType::kFLOAT;
    }
    return pos == 1 || desc.type == inOut[1].desc.type;
}

int32_t MultiLevelRoIAlignPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                     DataType const* inputTypes, int32_t nbInputs) const noexcept {
    if (nbOutputs != 1 || nbInputs < 2) {
        return -1;
    }
    outputTypes[0] = inputTypes[1];
    return 0;
}

int32_t MultiLevelRoIAlignPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
                                                  DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                                  DimsExprs* outputs, int32_t nbOutputs,
                                                  IExprBuilder& exprBuilder) noexcept {
    if (nbInputs != numLevels() + 1 || nbOutputs != 1 || inputs[0].nbDims != 3 || inputs[1].nbDims != 4) {
        return -1;
    }
    outputs[0].nbDims = 5;
    outputs[0].d[0] = inputs[0].d[0];
    outputs[0].d[1] = inputs[0].d[1];
    outputs[0].d[2] = inputs[1].d[1];
    outputs[0].d[3] = exprBuilder.constant(mAttrs.output_height);
    outputs[0].d[4] = exprBuilder.constant(mAttrs.output_width);
    return 0;
}

size_t MultiLevelRoIAlignPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                                                  DynamicPluginTensorDesc const* /*outputs*/,
                                                  int32_t /*nbOutputs*/) const noexcept {
    return 0;  // level table travels as kernel parameters
}

bool MultiLevelRoIAlignPlugin::shapesValid(PluginTensorDesc const* in, int32_t nbInputs) const noexcept {
    if (nbInputs != numLevels() + 1 || in[0].dims.nbDims != 3 || in[0].dims.d[2] != 4) {
        return false;
    }
    if (in[0].type != DataType::kFLOAT) {
        return false;
    }
    for (int32_t i = 1; i < nbInputs; ++i) {
        if (in[i].dims.nbDims != 4 || in[i].dims.d[0] != in[0].dims.d[0] || in[i].dims.d[1] != in[1].dims.d[1] ||
            in[i].type != in[1].type) {
            return false;
        }
    }
    return true;
}

int32_t MultiLevelRoIAlignPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs,
                                                PluginTensorDesc const* /*out*/, int32_t /*nbOutputs*/) noexcept {
    if (!shapesValid(in, nbInputs)) {
        log_error(std::string(kName) +
                  ": inputs must be FP32 rois [N, R, 4] and features [N, C, H_l, W_l] of one type");
        return -1;
    }
    return 0;
}

int32_t MultiLevelRoIAlignPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                          void const* const* inputs, void* const* outputs, void* /*workspace*/,
                                          cudaStream_t stream) noexcept {
    int32_t const levels = numLevels();
    void const* features[EDGERCNN_MAX_LEVELS] = {};
    int64_t heights[EDGERCNN_MAX_LEVELS] = {};
    int64_t widths[EDGERCNN_MAX_LEVELS] = {};
    for (int32_t l = 0; l < levels; ++l) {
        features[l] = inputs[l + 1];
        heights[l] = inputDesc[l + 1].dims.d[2];
        widths[l] = inputDesc[l + 1].dims.d[3];
    }
    if (inputDesc[0].type != DataType::kFLOAT) {
        log_error(std::string(kName) + ": rois must be FP32");
        return -1;
    }
    int32_t const dtype = inputDesc[1].type == DataType::kHALF ? EDGERCNN_FLOAT16 : EDGERCNN_FLOAT32;
    int const status = edgercnn_cuda_multi_level_roi_align(
        dtype, EDGERCNN_FLOAT32, inputs[0], features, levels, heights, widths, inputDesc[0].dims.d[0], inputDesc[0].dims.d[1],
        inputDesc[1].dims.d[1], mAttrs.spatial_scales.data(), mAttrs.output_height, mAttrs.output_width,
        mAttrs.sampling_ratio, mAttrs.aligned, mAttrs.mode, mAttrs.canonical_scale, mAttrs.canonical_level,
        mAttrs.eps, outputs[0], stream);
    if (status != 0) {
        log_error(std::string(kName) + ": kernel launch failed with status " + std::to_string(status));
    }
    return status;
}

IPluginV3* MultiLevelRoIAlignPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept {
    return clone();  // no per-context resources
}

PluginFieldCollection const* MultiLevelRoIAlignPlugin::getFieldsToSerialize() noexcept {
    mSerialized.clear();
    mSerialized.emplace_back("output_height", &mAttrs.output_height, PluginFieldType::kINT32, 1);
    mSerialized.emplace_back("output_width", &mAttrs.output_width, PluginFieldType::kINT32, 1);
    mSerialized.emplace_back("spatial_scales", mAttrs.spatial_scales.data(), PluginFieldType::kFLOAT32,
                             static_cast<int32_t>(mAttrs.spatial_scales.size()));
    mSerialized.emplace_back("sampling_ratio", &mAttrs.sampling_ratio, PluginFieldType::kINT32, 1);
    mSerialized.emplace_back("aligned", &mAttrs.aligned, PluginFieldType::kINT32, 1);
    mSerialized.emplace_back("mode", &mAttrs.mode, PluginFieldType::kINT32, 1);
    mSerialized.emplace_back("canonical_scale", &mAttrs.canonical_scale, PluginFieldType::kINT32, 1);
    mSerialized.emplace_back("canonical_level", &mAttrs.canonical_level, PluginFieldType::kINT32, 1);
    mSerialized.emplace_back("eps", &mAttrs.eps, PluginFieldType::kFLOAT32, 1);
    mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
    mSerializedCollection.fields = mSerialized.data();
    return &mSerializedCollection;
}

MultiLevelRoIAlignCreator::MultiLevelRoIAlignCreator() {
    mFields.emplace_back("output_height", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("output_width", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("spatial_scales", nullptr, PluginFieldType::kFLOAT32, EDGERCNN_MAX_LEVELS);
    mFields.emplace_back("sampling_ratio", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("aligned", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("mode", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("canonical_scale", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("canonical_level", nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back("eps", nullptr, PluginFieldType::kFLOAT32, 1);
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

char const* MultiLevelRoIAlignCreator::getPluginName() const noexcept { return kName; }
char const* MultiLevelRoIAlignCreator::getPluginVersion() const noexcept { return kPluginVersion; }
char const* MultiLevelRoIAlignCreator::getPluginNamespace() const noexcept { return kPluginNamespace; }
PluginFieldCollection const* MultiLevelRoIAlignCreator::getFieldNames() noexcept { return &mCollection; }

bool MultiLevelRoIAlignCreator::parse(PluginFieldCollection const* fc, RoiAlignAttributes& attrs) noexcept {
    FieldReader const reader(fc);
    int64_t v = 0;
    auto read_int = [&](char const* name, int32_t& dst, bool required) {
        if (reader.get_int(name, v)) {
            dst = static_cast<int32_t>(v);
            return true;
        }
        if (required) {
            log_error(std::string(kName) + ": attribute '" + name + "' is missing");
        }
        return !required;
    };
    bool ok = read_int("output_height", attrs.output_height, true) &&
              read_int("output_width", attrs.output_width, true) &&
              read_int("sampling_ratio", attrs.sampling_ratio, false) && read_int("aligned", attrs.aligned, false) &&
              read_int("mode", attrs.mode, false) && read_int("canonical_scale", attrs.canonical_scale, false) &&
              read_int("canonical_level", attrs.canonical_level, false);
    if (!ok) {
        return false;
    }
    if (reader.has("eps") && !reader.get_float("eps", attrs.eps)) {
        log_error(std::string(kName) + ": attribute 'eps' is not a number");
        return false;
    }
    if (!reader.get_floats("spatial_scales", attrs.spatial_scales)) {
        log_error(std::string(kName) + ": attribute 'spatial_scales' (floats, one per level) is missing");
        return false;
    }
    // Same rules as the kernels' C entry point: a RoI's level is its exponent minus the first's.
    char const* bad = edgercnn::level_table_error(static_cast<int>(attrs.spatial_scales.size()), EDGERCNN_MAX_LEVELS,
                                                  attrs.spatial_scales.data(), nullptr, nullptr);
    if (bad != nullptr) {
        log_error(std::string(kName) + ": " + bad);
        return false;
    }
    if (attrs.output_height < 1 || attrs.output_width < 1 || (attrs.mode != 0 && attrs.mode != 1) ||
        attrs.canonical_scale <= 0) {
        log_error(std::string(kName) + ": output size must be >= 1, mode 0 or 1, canonical_scale > 0");
        return false;
    }
    attrs.aligned = attrs.aligned != 0 ? 1 : 0;
    return true;
}

IPluginV3* MultiLevelRoIAlignCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                                   TensorRTPhase /*phase*/) noexcept {
    try {
        RoiAlignAttributes attrs;
        if (!parse(fc, attrs)) {
            return nullptr;
        }
        return new MultiLevelRoIAlignPlugin(std::move(attrs));
    } catch (std::exception const& e) {
        log_error(std::string(kName) + ": " + e.what());
    }
    return nullptr;
}

}  // namespace trt
}  // namespace edgercnn
