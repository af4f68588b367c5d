// Helpers shared by the edgercnn TensorRT plugins: contract constants, attribute parsing from the
// PluginFieldCollection the ONNX parser builds (it may deliver ints as INT32 or INT64 and floats as
// FLOAT32 or FLOAT64, so every numeric field type is accepted), logging through TensorRT's logger.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace edgercnn {
namespace trt {

constexpr char const* kPluginNamespace = "edgercnn";
constexpr char const* kPluginVersion = "1";

// Logs through the logger TensorRT hands over with setLoggerFinder, or to stderr.
void log_error(std::string const& message) noexcept;
void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept;

// Numeric plugin attributes, whatever numeric PluginFieldType they arrive in.
class FieldReader {
public:
    explicit FieldReader(nvinfer1::PluginFieldCollection const* fc) noexcept : mFc(fc) {}

    bool has(char const* name) const noexcept { return find(name) != nullptr; }
    bool get_int(char const* name, int64_t& value) const noexcept;
    bool get_float(char const* name, float& value) const noexcept;
    bool get_floats(char const* name, std::vector<float>& values) const noexcept;

private:
    nvinfer1::PluginField const* find(char const* name) const noexcept;
    static bool element_as_double(nvinfer1::PluginField const& f, int32_t i, double& out) noexcept;
    nvinfer1::PluginFieldCollection const* mFc;
};

// Names and types a creator advertises in getFieldNames().
class FieldSchema {
public:
    void add(char const* name, nvinfer1::PluginFieldType type, int32_t length) {
        mFields.emplace_back(name, nullptr, type, length);
        mCollection.nbFields = static_cast<int32_t>(mFields.size());
        mCollection.fields = mFields.data();
    }
    nvinfer1::PluginFieldCollection const* collection() const noexcept { return &mCollection; }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

bool is_linear_float(nvinfer1::PluginTensorDesc const& desc) noexcept;

}  // namespace trt
}  // namespace edgercnn
