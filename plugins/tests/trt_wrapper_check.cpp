// Host-side check of the TensorRT plugin wrappers without a GPU: creators from getCreators(),
// attributes as the ONNX parser delivers them, formats, output types, serialization round trip,
// shape validation and refusals. Built and run by tests/test_plugins_cmake.py where TensorRT
// headers and libnvinfer exist (enqueue and getOutputShapes need a GPU / TensorRT's builder).
#include <NvInferRuntime.h>
#include <cstdio>
#include <cstring>
#include <vector>
#include <cmath>
using namespace nvinfer1;
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nb);
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
  DataType in[5] = {DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF}; DataType out[1];
  CHECK(build->getOutputDataTypes(out, 1, in, 5) == 0 && out[0] == DataType::kHALF);
  DynamicPluginTensorDesc io[6]{};
  for (auto& d : io) { d.desc.type = DataType::kFLOAT; d.desc.format = TensorFormat::kLINEAR; }
  for (int p = 0; p < 6; ++p) CHECK(build->supportsFormatCombination(p, io, 5, 1));
  io[3].desc.type = DataType::kHALF; CHECK(!build->supportsFormatCombination(3, io, 5, 1));
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
  td[2].dims.d[1] = 9; CHECK(rt2->onShapeChange(td, 5, nullptr, 1) != 0);
  // bad attributes -> nullptr
  float bad[1] = {0.3f}; f[2] = {"spatial_scales", bad, PluginFieldType::kFLOAT32, 1};
  CHECK(roiC->createPlugin("roi", &fc, TensorRTPhase::kBUILD) == nullptr);
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
  nio[0].desc.type = DataType::kHALF; nio[1].desc.type = DataType::kHALF; nio[2].desc.type = DataType::kINT32;
  nio[3].desc.type = DataType::kINT64; nio[4].desc.type = DataType::kINT64;
  for (int p = 0; p < 5; ++p) CHECK(nb2->supportsFormatCombination(p, nio, 3, 2));
  nio[1].desc.type = DataType::kFLOAT; CHECK(!nb2->supportsFormatCombination(1, nio, 3, 2));
  nio[3].desc.type = DataType::kINT32; CHECK(!nb2->supportsFormatCombination(3, nio, 3, 2));
  auto* nrt = static_cast<IPluginV3OneRuntime*>(nms->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
  const PluginFieldCollection* ns = nrt->getFieldsToSerialize(); CHECK(ns->nbFields == 4);
  CHECK(nmsC->createPlugin("nms", ns, TensorRTPhase::kRUNTIME) != nullptr);
  std::vector<PluginField> h = {{"score_threshold", &st, PluginFieldType::kFLOAT32, 1}};
  PluginFieldCollection hc{1, h.data()};
  CHECK(nmsC->createPlugin("nms", &hc, TensorRTPhase::kBUILD) == nullptr);
  delete roi; delete roi2; delete roi3; delete nms;
  std::printf("all plugin wrapper checks passed (TRT headers %d.%d)\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR);
  return 0;
}
