// TensorRT plugin EdgeRCNN_MultiLevelRoIAlign (version "1", namespace "edgercnn"), IPluginV3.
// Contract: plugins/README.md section 1. Inputs rois [N, R, 4] (FP32 only) and 1..5 feature maps
// [N, C, H_l, W_l] (FP32 or FP16, one type, linear), output [N, R, C, output_height, output_width] in
// the features' type.
#pragma once

#include <NvInferRuntime.h>

#include <string>
#include <vector>

namespace edgercnn {
namespace trt {

struct RoiAlignAttributes {
    int32_t output_height{7};
    int32_t output_width{7};
    std::vector<float> spatial_scales;
    int32_t sampling_ratio{0};
    int32_t aligned{0};
    int32_t mode{0};
    int32_t canonical_scale{224};
    int32_t canonical_level{4};
    float eps{1e-6f};
};

class MultiLevelRoIAlignPlugin : public nvinfer1::IPluginV3,
                                 public nvinfer1::IPluginV3OneCore,
                                 public nvinfer1::IPluginV3OneBuild,
                                 public nvinfer1::IPluginV3OneRuntime {
public:
    explicit MultiLevelRoIAlignPlugin(RoiAlignAttributes attributes);
    MultiLevelRoIAlignPlugin(MultiLevelRoIAlignPlugin const& other);
    MultiLevelRoIAlignPlugin& operator=(MultiLevelRoIAlignPlugin const&) = delete;
    ~MultiLevelRoIAlignPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    int32_t numLevels() const noexcept { return static_cast<int32_t>(mAttrs.spatial_scales.size()); }
    bool shapesValid(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs) const noexcept;

    RoiAlignAttributes mAttrs;
    std::vector<nvinfer1::PluginField> mSerialized;
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

class MultiLevelRoIAlignCreator : public nvinfer1::IPluginCreatorV3One {
public:
    MultiLevelRoIAlignCreator();
    ~MultiLevelRoIAlignCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;

    // Parses and validates the attributes; false (with a logged reason) when they break the contract.
    static bool parse(nvinfer1::PluginFieldCollection const* fc, RoiAlignAttributes& attrs) noexcept;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

}  // namespace trt
}  // namespace edgercnn
