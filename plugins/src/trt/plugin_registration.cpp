// Registration of the edgercnn plugin creators, two ways:
// - loading the library (dlopen / ctypes.CDLL / trtexec --plugins) registers them with TensorRT's
//   global registry from a static initializer (EDGERCNN_STATIC_REGISTRATION, default on);
// - IPluginRegistry::loadLibrary (and trtexec --staticPlugins / lean runtimes) call getCreators()
//   and setLoggerFinder(); build with -DEDGERCNN_STATIC_REGISTRATION=OFF for that use so the
//   creators are not registered twice.
#include <NvInferRuntime.h>

#include "batched_nms_plugin.h"
#include "multi_level_roi_align_plugin.h"
#include "plugin_common.h"

#ifndef EDGERCNN_STATIC_REGISTRATION
#define EDGERCNN_STATIC_REGISTRATION 1
#endif

namespace {

edgercnn::trt::MultiLevelRoIAlignCreator& roi_align_creator() {
    static edgercnn::trt::MultiLevelRoIAlignCreator creator;
    return creator;
}

edgercnn::trt::BatchedNMSCreator& nms_creator() {
    static edgercnn::trt::BatchedNMSCreator creator;
    return creator;
}

#if EDGERCNN_STATIC_REGISTRATION
struct StaticRegistration {
    StaticRegistration() {
        nvinfer1::IPluginRegistry* registry = getPluginRegistry();
        if (registry == nullptr) {
            edgercnn::trt::log_error("TensorRT plugin registry unavailable; plugins not registered");
            return;
        }
        for (nvinfer1::IPluginCreatorInterface* creator :
             {static_cast<nvinfer1::IPluginCreatorInterface*>(&roi_align_creator()),
              static_cast<nvinfer1::IPluginCreatorInterface*>(&nms_creator())}) {
            if (!registry->registerCreator(*creator, edgercnn::trt::kPluginNamespace)) {
                edgercnn::trt::log_error("registering a plugin creator failed (already registered?)");
            }
        }
    }
};
StaticRegistration const gStaticRegistration;
#endif

}  // namespace

extern "C" {

// Entry points TensorRT's IPluginRegistry::loadLibrary looks for.
__attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    edgercnn::trt::set_logger_finder(finder);
}

__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&roi_align_creator(), &nms_creator()};
    nbCreators = 2;
    return creators;
}

// Lets Python check that the library it loaded is this one.
__attribute__((visibility("default"))) int edgercnn_plugins_version(void) { return 1; }

}  // extern "C"
