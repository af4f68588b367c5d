#include "plugin_common.h"

#include <cstdio>

namespace edgercnn {
namespace trt {

namespace {
nvinfer1::ILoggerFinder* gLoggerFinder = nullptr;
}

void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept { gLoggerFinder = finder; }

void log_error(std::string const& message) noexcept {
    std::string const text = "[edgercnn plugins] " + message;
    nvinfer1::ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
    if (logger != nullptr) {
        logger->log(nvinfer1::ILogger::Severity::kERROR, text.c_str());
    } else {
        std::fprintf(stderr, "%s\n", text.c_str());
    }
}

nvinfer1::PluginField const* FieldReader::find(char const* name) const noexcept {
    if (mFc == nullptr) {
        return nullptr;
    }
    for (int32_t i = 0; i < mFc->nbFields; ++i) {
        nvinfer1::PluginField const& f = mFc->fields[i];
        if (f.name != nullptr && std::strcmp(f.name, name) == 0 && f.data != nullptr && f.length > 0) {
            return &f;
        }
    }
    return nullptr;
}

bool FieldReader::element_as_double(nvinfer1::PluginField const& f, int32_t i, double& out) noexcept {
    using T = nvinfer1::PluginFieldType;
    switch (f.type) {
    case T::kFLOAT32: out = static_cast<float const*>(f.data)[i]; return true;
    case T::kFLOAT64: out = static_cast<double const*>(f.data)[i]; return true;
    case T::kINT8: out = static_cast<int8_t const*>(f.data)[i]; return true;
    case T::kINT16: out = static_cast<int16_t const*>(f.data)[i]; return true;
    case T::kINT32: out = static_cast<int32_t const*>(f.data)[i]; return true;
    case T::kINT64: out = static_cast<double>(static_cast<int64_t const*>(f.data)[i]); return true;
    default: return false;
    }
}

bool FieldReader::get_int(char const* name, int64_t& value) const noexcept {
    nvinfer1::PluginField const* f = find(name);
    if (f == nullptr) {
        return false;
    }
    if (f->type == nvinfer1::PluginFieldType::kINT64) {
        value = static_cast<int64_t const*>(f->data)[0];
        return true;
    }
    double d = 0.0;
    if (!element_as_double(*f, 0, d)) {
        return false;
    }
    value = static_cast<int64_t>(d);
    return true;
}

bool FieldReader::get_float(char const* name, float& value) const noexcept {
    nvinfer1::PluginField const* f = find(name);
    double d = 0.0;
    if (f == nullptr || !element_as_double(*f, 0, d)) {
        return false;
    }
    value = static_cast<float>(d);
    return true;
}

bool FieldReader::get_floats(char const* name, std::vector<float>& values) const noexcept {
    nvinfer1::PluginField const* f = find(name);
    if (f == nullptr) {
        return false;
    }
    values.clear();
    for (int32_t i = 0; i < f->length; ++i) {
        double d = 0.0;
        if (!element_as_double(*f, i, d)) {
            return false;
        }
        values.push_back(static_cast<float>(d));
    }
    return true;
}

bool is_linear_float(nvinfer1::PluginTensorDesc const& desc) noexcept {
    return desc.format == nvinfer1::TensorFormat::kLINEAR &&
           (desc.type == nvinfer1::DataType::kFLOAT || desc.type == nvinfer1::DataType::kHALF);
}

}  // namespace trt
}  // namespace edgercnn
