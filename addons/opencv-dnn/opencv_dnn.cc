// OpenCV DNN addon: loads Caffe, Darknet, TensorFlow, Torch/ENet and ONNX models with
// cv::dnn::readNet* and runs them asynchronously. TypeScript (agent/runtime/backends/opencv.ts)
// has already checked the files, shapes and names; this file only drives OpenCV.
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/dnn.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model_wrap.h"

namespace {

using outpost::AddonError;

std::pair<int, int> ChooseBackend(const std::string& preference, std::string& backend, std::string& target) {
  const auto available = cv::dnn::getAvailableBackends();
  auto has = [&](int b, int t) {
    for (const auto& p : available)
      if (p.first == b && p.second == t) return true;
    return false;
  };
  if (preference == "cuda_fp16" && has(cv::dnn::DNN_BACKEND_CUDA, cv::dnn::DNN_TARGET_CUDA_FP16)) {
    backend = "cuda";
    target = "cuda_fp16";
    return {cv::dnn::DNN_BACKEND_CUDA, cv::dnn::DNN_TARGET_CUDA_FP16};
  }
  if ((preference == "cuda" || preference == "cuda_fp16") && has(cv::dnn::DNN_BACKEND_CUDA, cv::dnn::DNN_TARGET_CUDA)) {
    backend = "cuda";
    target = "cuda";
    return {cv::dnn::DNN_BACKEND_CUDA, cv::dnn::DNN_TARGET_CUDA};
  }
  backend = "opencv";
  target = "cpu";
  return {cv::dnn::DNN_BACKEND_OPENCV, cv::dnn::DNN_TARGET_CPU};
}

cv::dnn::Net ReadNet(const std::string& framework, const std::string& model, const std::string& config) {
  if (framework == "caffe") return cv::dnn::readNetFromCaffe(config, model);
  if (framework == "darknet") return cv::dnn::readNetFromDarknet(config, model);
  if (framework == "tensorflow") return cv::dnn::readNetFromTensorflow(model, config);
  if (framework == "enet" || framework == "torch") return cv::dnn::readNetFromTorch(model);
  if (framework == "onnx") return cv::dnn::readNetFromONNX(model);
  throw AddonError("ADDON_MODEL_MISMATCH", "framework '" + framework + "' is not read by OpenCV DNN");
}

// One loaded network. cv::dnn::Net is not safe to run from two threads at once; ModelWrap holds
// the model's mutex around every Run (the TypeScript side also queues runs per model).
struct OpenCvDnn {
  struct State {
    cv::dnn::Net net;
    std::vector<std::string> outputNames;
    std::string backend;
    std::string target;
  };

  struct Spec {
    std::string framework;
    std::string model;
    std::string config;
    std::string preference;  // "cpu", "cuda", "cuda_fp16"
  };

  static constexpr const char* kClassName = "OpenCvNet";
  static constexpr const char* kRunMethod = "forward";

  static Spec ReadSpec(Napi::Env env, Napi::Value arg) {
    Napi::Object o = outpost::SpecObject(env, arg, "{framework, model, config?, target?}");
    Spec spec{outpost::SpecString(o, "framework"), outpost::SpecString(o, "model"), outpost::SpecString(o, "config"),
              outpost::SpecString(o, "target")};
    if (spec.model.empty()) outpost::ThrowError(env, "RUNTIME_INPUT_INVALID", "load() needs the model file path");
    return spec;
  }

  static void Open(const Spec& spec, State& state) {
    try {
      state.net = ReadNet(spec.framework, spec.model, spec.config);
    } catch (const cv::Exception& e) {
      throw AddonError("ADDON_MODEL_INVALID", "OpenCV could not read the " + spec.framework + " model: " + e.msg);
    }
    if (state.net.empty()) {
      throw AddonError("ADDON_MODEL_INVALID", "OpenCV read the " + spec.framework + " model but it has no layers");
    }
    auto [b, t] = ChooseBackend(spec.preference, state.backend, state.target);
    state.net.setPreferableBackend(b);
    state.net.setPreferableTarget(t);
    for (const auto& n : state.net.getUnconnectedOutLayersNames()) state.outputNames.push_back(n);
  }

  static void Run(State& state, const outpost::RunRequest& req, std::vector<outpost::OutputTensor>& outputs) {
    for (const auto& in : req.inputs) {
      std::vector<int> sizes(in.shape.begin(), in.shape.end());
      // A header over the caller's bytes: no copy; OpenCV copies into its own blob in forward.
      cv::Mat blob(static_cast<int>(sizes.size()), sizes.data(), CV_32F, const_cast<float*>(in.data));
      state.net.setInput(blob, req.inputs.size() == 1 ? "" : in.name);
    }
    const auto& names = req.outputNames.empty() ? state.outputNames : req.outputNames;
    std::vector<cv::Mat> outs;
    try {
      state.net.forward(outs, names);
    } catch (const cv::Exception& e) {
      throw AddonError("RUNTIME_INFERENCE_FAILED", "OpenCV forward failed: " + e.msg);
    }
    for (size_t i = 0; i < outs.size(); ++i) {
      // forward() hands back headers over the net's own buffers, which the next run overwrites;
      // one copy here makes each result independent of later runs.
      auto mat = std::make_shared<cv::Mat>();
      if (outs[i].type() == CV_32F) {
        *mat = outs[i].clone();
      } else {
        outs[i].convertTo(*mat, CV_32F);
      }
      outpost::OutputTensor t;
      t.name = i < names.size() ? names[i] : "output" + std::to_string(i);
      for (int d = 0; d < mat->dims; ++d) t.shape.push_back(mat->size[d]);
      t.data = mat->ptr<float>();
      t.count = mat->total();
      t.owner = mat;
      outputs.push_back(std::move(t));
    }
  }

  static Napi::Value Info(Napi::Env env, const State& state) {
    Napi::Object o = Napi::Object::New(env);
    Napi::Array names = Napi::Array::New(env, state.outputNames.size());
    for (uint32_t i = 0; i < state.outputNames.size(); ++i) names.Set(i, state.outputNames[i]);
    o.Set("outputNames", names);
    o.Set("backend", state.backend);
    o.Set("target", state.target);
    return o;
  }
};

// What this OpenCV was built with, for the capability probe.
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", cv::getVersionString());
  o.Set("buildInformation", cv::getBuildInformation());
  Napi::Array pairs = Napi::Array::New(env);
  uint32_t i = 0;
  for (const auto& p : cv::dnn::getAvailableBackends()) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Number::New(env, p.first));
    pair.Set(1u, Napi::Number::New(env, p.second));
    pairs.Set(i++, pair);
  }
  o.Set("backendTargets", pairs);
  bool cuda = false;
  for (const auto& p : cv::dnn::getAvailableBackends()) cuda = cuda || p.first == cv::dnn::DNN_BACKEND_CUDA;
  o.Set("cuda", cuda);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Quiet OpenCV's own stderr logging; failures reach JS as coded errors instead.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
  outpost::ExportModelApi<OpenCvDnn>(env, exports);
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_opencv_dnn, Init)
