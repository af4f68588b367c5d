// TensorRT plugin EdgeRCNN_BatchedNMS (version "1", namespace "edgercnn"), IPluginV3.
// Contract: plugins/README.md section 2. Inputs boxes [N, B, 4], scores [N, B] (FP32 only),
// idxs [N, B] (INT64 or INT32); outputs keep [N, max_output] and count [N], both INT64.
#pragma once

#include <NvInferRuntime.h>

#include <limits>
#include <vector>

namespace edgercnn {
namespace trt {

struct NmsAttributes {
    float iou_threshold{0.5f};
    float score_threshold{-std::numeric_limits<float>::infinity()};
    int32_t max_output{100};
    int32_t pre_nms_top_n{-1};
};

// The profile bounds getWorkspaceSize sized the workspace for (build time), serialized with the
// plugin: enqueue gets no workspace size from TensorRT, so it recomputes the granted size from
// these and refuses a shape whose needs exceed it. -1: unknown (not configured, not deserialized).
struct NmsWorkspaceProfile {
    int64_t max_batch{-1};
    int64_t min_boxes{-1};
    int64_t max_boxes{-1};
};

// Workspace bytes for every shape with batch <= max_batch and min_boxes <= B <= max_boxes;
// SIZE_MAX when it cannot be known.
size_t nms_workspace_for_profile(NmsWorkspaceProfile const& profile, int32_t pre_nms_top_n) noexcept;

class BatchedNMSPlugin : public nvinfer1::IPluginV3,
                         public nvinfer1::IPluginV3OneCore,
                         public nvinfer1::IPluginV3OneBuild,
                         public nvinfer1::IPluginV3OneRuntime {
public:
    explicit BatchedNMSPlugin(NmsAttributes attributes, NmsWorkspaceProfile profile = {});
    BatchedNMSPlugin(BatchedNMSPlugin const& other);
    BatchedNMSPlugin& operator=(BatchedNMSPlugin const&) = delete;
    ~BatchedNMSPlugin() override = default;

    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

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

    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

    NmsWorkspaceProfile const& workspaceProfile() const noexcept { return mProfile; }

private:
    NmsAttributes mAttrs;
    NmsWorkspaceProfile mProfile;
    std::vector<nvinfer1::PluginField> mSerialized;
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

class BatchedNMSCreator : public nvinfer1::IPluginCreatorV3One {
public:
    BatchedNMSCreator();
    ~BatchedNMSCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;

    static bool parse(nvinfer1::PluginFieldCollection const* fc, NmsAttributes& attrs,
                      NmsWorkspaceProfile& profile) noexcept;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

}  // namespace trt
}  // namespace edgercnn
