// Host-side check of the TensorRT plugin wrappers without a GPU: creators from getCreators(),
// attributes as the ONNX parser delivers them, formats, output types, serialization round trip,
// shape validation and refusals. Built and run by tests/test_plugins_cmake.py where TensorRT
// headers and libnvinfer exist (enqueue and getOutputShapes need a GPU / TensorRT's builder).
#include <NvInferRuntime.h>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include <cmath>
#include "../src/trt/batched_nms_plugin.h"
using namespace nvinfer1;
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nb);
extern "C" void setLoggerFinder(ILoggerFinder* finder);
// A logger TensorRT would hand over through setLoggerFinder; counts errors from any thread.
struct CountingLogger : ILogger {
  std::atomic<int> errors{0}; std::atomic<int> profile_errors{0};
  void log(Severity s, AsciiChar const* msg) noexcept override {
    if (s == Severity::kERROR) { ++errors; if (std::strstr(msg, "outside the build profile")) ++profile_errors; }
  }
};
struct Finder : ILoggerFinder { ILogger* logger = nullptr; ILogger* findLogger() override { return logger; } };
#define CHECK(c) do { if (!(c)) { std::printf("FAIL %s:%d %s\n", __FILE__, __LINE__, #c); return 1; } } while (0)
int main() {
  int32_t nb = 0; auto creators = getCreators(nb); CHECK(nb == 2);
  auto* roiC = static_cast<IPluginCreatorV3One*>(creators[0]);
  auto* nmsC = static_cast<IPluginCreatorV3One*>(creators[1]);
  CHECK(std::strcmp(roiC->getPluginName(), "EdgeRCNN_MultiLevelRoIAlign") == 0);
  CHECK(std::strcmp(nmsC->getPluginName(), "EdgeRCNN_BatchedNMS") == 0);
  CHECK(std::strcmp(roiC->getPluginNamespace(), "edgercnn") == 0 && std::strcmp(roiC->getPluginVersion(), "1") == 0);
  // ONNX-parser-like fields: ints as INT64 here, floats FLOAT32, strings CHAR
  int64_t oh = 7, ow = 5, sr = 0, al = 1, mode = 0, cs = 224, cl = 4; float eps = 1e-6f;
  float scales[4] = {0.25f, 0.125f, 0.0625f, 0.03125f};
  const char* ver = "1";
  std::vector<PluginField> f = {
    {"output_height", &oh, PluginFieldType::kINT64, 1}, {"output_width", &ow, PluginFieldType::kINT64, 1},
    {"spatial_scales", scales, PluginFieldType::kFLOAT32, 4}, {"sampling_ratio", &sr, PluginFieldType::kINT64, 1},
    {"aligned", &al, PluginFieldType::kINT64, 1}, {"mode", &mode, PluginFieldType::kINT64, 1},
    {"canonical_scale", &cs, PluginFieldType::kINT64, 1}, {"canonical_level", &cl, PluginFieldType::kINT64, 1},
    {"eps", &eps, PluginFieldType::kFLOAT32, 1}, {"plugin_version", ver, PluginFieldType::kCHAR, 1}};
  PluginFieldCollection fc{(int32_t)f.size(), f.data()};
  IPluginV3* roi = roiC->createPlugin("roi", &fc, TensorRTPhase::kBUILD);
  CHECK(roi != nullptr);
  auto* core = static_cast<IPluginV3OneCore*>(roi->getCapabilityInterface(PluginCapabilityType::kCORE));
  auto* build = static_cast<IPluginV3OneBuild*>(roi->getCapabilityInterface(PluginCapabilityType::kBUILD));
  auto* rt = static_cast<IPluginV3OneRuntime*>(roi->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  CHECK(std::strcmp(core->getPluginName(), "EdgeRCNN_MultiLevelRoIAlign") == 0);
  CHECK(build->getNbOutputs() == 1);
  // FP32 rois with HALF features -> HALF output
  DataType in[5] = {DataType::kFLOAT, DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF}; DataType out[1];
  CHECK(build->getOutputDataTypes(out, 1, in, 5) == 0 && out[0] == DataType::kHALF);
  DynamicPluginTensorDesc io[6]{};
  for (auto& d : io) { d.desc.type = DataType::kFLOAT; d.desc.format = TensorFormat::kLINEAR; }
  for (int p = 0; p < 6; ++p) CHECK(build->supportsFormatCombination(p, io, 5, 1));
  io[3].desc.type = DataType::kHALF; CHECK(!build->supportsFormatCombination(3, io, 5, 1));  // levels disagree
  for (int p = 1; p < 6; ++p) io[p].desc.type = DataType::kHALF;
  for (int p = 0; p < 6; ++p) CHECK(build->supportsFormatCombination(p, io, 5, 1));  // HALF features, FP32 rois
  io[0].desc.type = DataType::kHALF; CHECK(!build->supportsFormatCombination(0, io, 5, 1));  // never HALF rois
  io[0].desc.type = DataType::kINT32; CHECK(!build->supportsFormatCombination(0, io, 5, 1));
  // serialization round trip -> runtime plugin
  const PluginFieldCollection* ser = rt->getFieldsToSerialize();
  CHECK(ser->nbFields == 9);
  IPluginV3* roi2 = roiC->createPlugin("roi", ser, TensorRTPhase::kRUNTIME);
  CHECK(roi2 != nullptr);
  auto* rt2 = static_cast<IPluginV3OneRuntime*>(roi2->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  const PluginFieldCollection* ser2 = rt2->getFieldsToSerialize();
  CHECK(ser2->nbFields == ser->nbFields);
  for (int i = 0; i < ser->nbFields; ++i) {
    CHECK(std::strcmp(ser->fields[i].name, ser2->fields[i].name) == 0 && ser->fields[i].length == ser2->fields[i].length);
    CHECK(std::memcmp(ser->fields[i].data, ser2->fields[i].data, 4 * ser->fields[i].length) == 0);
  }
  const int32_t* ohs = nullptr; for (int i = 0; i < ser2->nbFields; ++i) if (!std::strcmp(ser2->fields[i].name, "output_width")) ohs = (const int32_t*)ser2->fields[i].data;
  CHECK(ohs && *ohs == 5);
  IPluginV3* roi3 = roi2->clone(); CHECK(roi3 != nullptr);
  // onShapeChange validation
  PluginTensorDesc td[5]{};
  td[0].dims.nbDims = 3; td[0].dims.d[0] = 1; td[0].dims.d[1] = 10; td[0].dims.d[2] = 4;
  for (int l = 1; l < 5; ++l) { td[l].dims.nbDims = 4; td[l].dims.d[0] = 1; td[l].dims.d[1] = 8; td[l].dims.d[2] = 64 >> l; td[l].dims.d[3] = 64 >> l; }
  CHECK(rt2->onShapeChange(td, 5, nullptr, 1) == 0);
  for (int l = 1; l < 5; ++l) td[l].type = DataType::kHALF;
  CHECK(rt2->onShapeChange(td, 5, nullptr, 1) == 0);
  td[0].type = DataType::kHALF; CHECK(rt2->onShapeChange(td, 5, nullptr, 1) != 0);
  td[0].type = DataType::kFLOAT;
  td[2].dims.d[1] = 9; CHECK(rt2->onShapeChange(td, 5, nullptr, 1) != 0);
  // bad attributes -> nullptr: not a power of two; a gap (1/4, 1/16); coarsest first
  float bad[1] = {0.3f}; f[2] = {"spatial_scales", bad, PluginFieldType::kFLOAT32, 1};
  CHECK(roiC->createPlugin("roi", &fc, TensorRTPhase::kBUILD) == nullptr);
  float gap[2] = {0.25f, 0.0625f}; f[2] = {"spatial_scales", gap, PluginFieldType::kFLOAT32, 2};
  CHECK(roiC->createPlugin("roi", &fc, TensorRTPhase::kBUILD) == nullptr);
  float reversed[2] = {0.125f, 0.25f}; f[2] = {"spatial_scales", reversed, PluginFieldType::kFLOAT32, 2};
  CHECK(roiC->createPlugin("roi", &fc, TensorRTPhase::kBUILD) == nullptr);
  float two[2] = {0.125f, 0.0625f}; f[2] = {"spatial_scales", two, PluginFieldType::kFLOAT32, 2};
  IPluginV3* roi4 = roiC->createPlugin("roi", &fc, TensorRTPhase::kBUILD); CHECK(roi4 != nullptr); delete roi4;
  // NMS with INT32 fields as other producers give
  float iou = 0.5f, st = 0.05f; int32_t mo = 100, pre = -1;
  std::vector<PluginField> g = {{"iou_threshold", &iou, PluginFieldType::kFLOAT32, 1}, {"score_threshold", &st, PluginFieldType::kFLOAT32, 1},
    {"max_output", &mo, PluginFieldType::kINT32, 1}, {"pre_nms_top_n", &pre, PluginFieldType::kINT32, 1}};
  PluginFieldCollection gc{(int32_t)g.size(), g.data()};
  IPluginV3* nms = nmsC->createPlugin("nms", &gc, TensorRTPhase::kBUILD);
  CHECK(nms != nullptr);
  auto* nb2 = static_cast<IPluginV3OneBuild*>(nms->getCapabilityInterface(PluginCapabilityType::kBUILD));
  CHECK(nb2->getNbOutputs() == 2);
  DataType nin[3] = {DataType::kFLOAT, DataType::kFLOAT, DataType::kINT64}; DataType nout[2];
  CHECK(nb2->getOutputDataTypes(nout, 2, nin, 3) == 0 && nout[0] == DataType::kINT64 && nout[1] == DataType::kINT64);
  DynamicPluginTensorDesc nio[5]{};
  for (auto& d : nio) d.desc.format = TensorFormat::kLINEAR;
  nio[0].desc.type = DataType::kFLOAT; nio[1].desc.type = DataType::kFLOAT; nio[2].desc.type = DataType::kINT32;
  nio[3].desc.type = DataType::kINT64; nio[4].desc.type = DataType::kINT64;
  for (int p = 0; p < 5; ++p) CHECK(nb2->supportsFormatCombination(p, nio, 3, 2));
  nio[0].desc.type = DataType::kHALF; CHECK(!nb2->supportsFormatCombination(0, nio, 3, 2));  // never HALF boxes
  nio[0].desc.type = DataType::kFLOAT; nio[1].desc.type = DataType::kHALF;
  CHECK(!nb2->supportsFormatCombination(1, nio, 3, 2));  // never HALF scores
  nio[1].desc.type = DataType::kFLOAT;
  nio[3].desc.type = DataType::kINT32; CHECK(!nb2->supportsFormatCombination(3, nio, 3, 2));
  // configure with a profile: boxes [1..4, 100..5000, 4]; the bounds travel with the serialized plugin
  DynamicPluginTensorDesc cin[3]{};
  cin[0].desc.dims.nbDims = 3; cin[0].min.nbDims = 3; cin[0].max.nbDims = 3;
  cin[0].min.d[0] = 1; cin[0].min.d[1] = 100; cin[0].min.d[2] = 4; cin[0].max.d[0] = 4; cin[0].max.d[1] = 5000; cin[0].max.d[2] = 4;
  cin[1].desc.dims.nbDims = 2; cin[2].desc.dims.nbDims = 2;
  CHECK(nb2->configurePlugin(cin, 3, nullptr, 2) == 0);
  auto* nrt = static_cast<IPluginV3OneRuntime*>(nms->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  const PluginFieldCollection* ns = nrt->getFieldsToSerialize(); CHECK(ns->nbFields == 7);
  IPluginV3* nms_rt = nmsC->createPlugin("nms", ns, TensorRTPhase::kRUNTIME);
  CHECK(nms_rt != nullptr);
  auto const& prof = static_cast<edgercnn::trt::BatchedNMSPlugin*>(nms_rt)->workspaceProfile();
  CHECK(prof.max_batch == 4 && prof.min_boxes == 100 && prof.max_boxes == 5000);
  // the granted size is the build-time formula; unknown bounds -> unknown size, never "what I need"
  CHECK(edgercnn::trt::nms_workspace_for_profile(edgercnn::trt::NmsWorkspaceProfile{}, -1) == SIZE_MAX);
  // enqueue refuses a shape beyond the profile before touching the GPU, and says so in the logger
  CountingLogger logger; Finder finder; finder.logger = &logger; setLoggerFinder(&finder);
  auto* nrt2 = static_cast<IPluginV3OneRuntime*>(nms_rt->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  PluginTensorDesc big[3]{}; big[0].type = big[1].type = DataType::kFLOAT; big[2].type = DataType::kINT64;
  big[0].dims.nbDims = 3; big[0].dims.d[0] = 1; big[0].dims.d[1] = 6000; big[0].dims.d[2] = 4;
  CHECK(nrt2->enqueue(big, nullptr, nullptr, nullptr, nullptr, nullptr) != 0);
  CHECK(logger.profile_errors == 1);
  big[0].type = DataType::kHALF; CHECK(nrt2->enqueue(big, nullptr, nullptr, nullptr, nullptr, nullptr) != 0);
  // logging from many threads at once reaches the logger once per call
  int const before = logger.errors;
  std::vector<std::thread> threads;
  std::vector<PluginField> none;
  PluginFieldCollection nc{0, none.data()};
  for (int t = 0; t < 8; ++t) threads.emplace_back([&] { for (int i = 0; i < 50; ++i) nmsC->createPlugin("x", &nc, TensorRTPhase::kBUILD); });
  for (auto& t : threads) t.join();
  CHECK(logger.errors - before == 400);
  finder.logger = nullptr;  // a finder that finds no logger: falls back (global logger or stderr)
  CHECK(nmsC->createPlugin("x", &nc, TensorRTPhase::kBUILD) == nullptr);
  setLoggerFinder(nullptr);
  delete nms_rt;
  std::vector<PluginField> h = {{"score_threshold", &st, PluginFieldType::kFLOAT32, 1}};
  PluginFieldCollection hc{1, h.data()};
  CHECK(nmsC->createPlugin("nms", &hc, TensorRTPhase::kBUILD) == nullptr);
  delete roi; delete roi2; delete roi3; delete nms;
  std::printf("all plugin wrapper checks passed (TRT headers %d.%d)\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR);
  return 0;
}
