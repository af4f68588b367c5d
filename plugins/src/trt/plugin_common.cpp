#include "plugin_common.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace edgercnn {
namespace trt {

namespace {
// Set by TensorRT (setLoggerFinder, from loadLibrary) on one thread, read by plugin methods on any
// build or execution thread: atomic, never a plain global.
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};
std::mutex gStderrMutex;  // whole lines on stderr when several threads log at once
}  // namespace

void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept { gLoggerFinder.store(finder); }

void log_error(std::string const& message) noexcept {
    try {
        std::string const text = "[edgercnn plugins] " + message;
        // 1. the finder TensorRT handed over (the logger of the builder/engine calling us; it must be
        //    asked on the calling thread, which is where plugin methods log);
        // 2. without one (library loaded with dlopen / static registration): TensorRT's global
        //    logger of standalone functions (getLogger, libnvinfer 8.6+);  3. stderr.
        nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
        nvinfer1::ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
        if (logger == nullptr) {
            logger = getLogger();
        }
        if (logger != nullptr) {
            logger->log(nvinfer1::ILogger::Severity::kERROR, text.c_str());
            return;
        }
        std::lock_guard<std::mutex> const lock(gStderrMutex);
        std::fprintf(stderr, "%s\n", text.c_str());
    } catch (...) {
        // out of memory building the message: nothing sensible left to report it with
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
