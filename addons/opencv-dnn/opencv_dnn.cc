// OpenCV DNN addon: loads Caffe, Darknet, TensorFlow, Torch/ENet and ONNX models with
// cv::dnn::readNet* and runs them asynchronously. TypeScript (agent/runtime/backends/opencv.ts)
// has already checked the files, shapes and names; this file only drives OpenCV.
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/dnn.hpp>

#include <memory>
#include <mutex>
#include <utility>

#include "outpost_addon.h"

namespace {

using outpost::AddonError;

// One loaded network. cv::dnn::Net is not safe to run from two threads at once, so every
// forward holds `mu`; the TypeScript side also queues runs per model, so the lock is uncontended.
struct NetState {
  cv::dnn::Net net;
  std::mutex mu;
  std::vector<std::string> outputNames;
  std::string backend;
  std::string target;
};

struct LoadSpec {
  std::string framework;
  std::string model;
  std::string config;
  std::string preference;  // "cpu", "cuda", "cuda_fp16"
};

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

cv::dnn::Net ReadNet(const LoadSpec& s) {
  if (s.framework == "caffe") return cv::dnn::readNetFromCaffe(s.config, s.model);
  if (s.framework == "darknet") return cv::dnn::readNetFromDarknet(s.config, s.model);
  if (s.framework == "tensorflow") return cv::dnn::readNetFromTensorflow(s.model, s.config);
  if (s.framework == "enet" || s.framework == "torch") return cv::dnn::readNetFromTorch(s.model);
  if (s.framework == "onnx") return cv::dnn::readNetFromONNX(s.model);
  throw AddonError("ADDON_MODEL_MISMATCH", "framework '" + s.framework + "' is not read by OpenCV DNN");
}

class NetWrap : public Napi::ObjectWrap<NetWrap> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "OpenCvNet",
                       {InstanceMethod("forward", &NetWrap::Forward), InstanceMethod("dispose", &NetWrap::Dispose),
                        InstanceMethod("info", &NetWrap::Info)});
  }

  // Called only from LoadWorker::Resolve with an External that owns a heap shared_ptr.
  explicit NetWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetWrap>(info) {
    auto* handed = info[0].As<Napi::External<std::shared_ptr<NetState>>>().Data();
    state_ = std::move(*handed);
    delete handed;
  }

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    // Dropping our reference is enough: a run in flight holds its own and frees the net last.
    state_.reset();
    return info.Env().Undefined();
  }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!state_) outpost::ThrowError(env, "RUNTIME_MODEL_UNLOADED", "the model was disposed; load it again");
    Napi::Object o = Napi::Object::New(env);
    Napi::Array names = Napi::Array::New(env, state_->outputNames.size());
    for (uint32_t i = 0; i < state_->outputNames.size(); ++i) names.Set(i, state_->outputNames[i]);
    o.Set("outputNames", names);
    o.Set("backend", state_->backend);
    o.Set("target", state_->target);
    return o;
  }

  std::shared_ptr<NetState> state_;
};

Napi::FunctionReference* NetWrap::constructor = nullptr;

class LoadWorker : public outpost::PromiseWorker {
 public:
  LoadWorker(Napi::Env env, LoadSpec spec) : PromiseWorker(env), spec_(std::move(spec)) {}

 protected:
  void Run() override {
    auto state = std::make_shared<NetState>();
    try {
      state->net = ReadNet(spec_);
    } catch (const cv::Exception& e) {
      throw AddonError("ADDON_MODEL_INVALID", "OpenCV could not read the " + spec_.framework + " model: " + e.msg);
    }
    if (state->net.empty()) {
      throw AddonError("ADDON_MODEL_INVALID", "OpenCV read the " + spec_.framework + " model but it has no layers");
    }
    auto [b, t] = ChooseBackend(spec_.preference, state->backend, state->target);
    state->net.setPreferableBackend(b);
    state->net.setPreferableTarget(t);
    for (const auto& n : state->net.getUnconnectedOutLayersNames()) state->outputNames.push_back(n);
    state_ = std::move(state);
  }

  Napi::Value Resolve(Napi::Env env) override {
    auto* handed = new std::shared_ptr<NetState>(std::move(state_));
    return NetWrap::constructor->New({Napi::External<std::shared_ptr<NetState>>::New(env, handed)});
  }

 private:
  LoadSpec spec_;
  std::shared_ptr<NetState> state_;
};

class ForwardWorker : public outpost::PromiseWorker {
 public:
  ForwardWorker(Napi::Env env, std::shared_ptr<NetState> state, std::vector<outpost::InputTensor> inputs,
                std::vector<std::string> names)
      : PromiseWorker(env), state_(std::move(state)), inputs_(std::move(inputs)), names_(std::move(names)) {}

 protected:
  void Run() override {
    std::vector<cv::Mat> outs;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      for (const auto& in : inputs_) {
        std::vector<int> sizes(in.shape.begin(), in.shape.end());
        // A header over the caller's bytes: no copy; OpenCV copies into its own blob in forward.
        cv::Mat blob(static_cast<int>(sizes.size()), sizes.data(), CV_32F, const_cast<float*>(in.data));
        state_->net.setInput(blob, inputs_.size() == 1 ? "" : in.name);
      }
      const auto& names = names_.empty() ? state_->outputNames : names_;
      try {
        state_->net.forward(outs, names);
      } catch (const cv::Exception& e) {
        throw AddonError("RUNTIME_INFERENCE_FAILED", "OpenCV forward failed: " + e.msg);
      }
      // forward() hands back headers over the net's own buffers, which the next run overwrites;
      // one copy here makes each result independent of later runs.
      for (auto& m : outs) m = m.type() == CV_32F ? m.clone() : [&] { cv::Mat f; m.convertTo(f, CV_32F); return f; }();
      outNames_ = names;
    }
    for (size_t i = 0; i < outs.size(); ++i) {
      auto mat = std::make_shared<cv::Mat>(std::move(outs[i]));
      outpost::OutputTensor t;
      t.name = i < outNames_.size() ? outNames_[i] : "output" + std::to_string(i);
      for (int d = 0; d < mat->dims; ++d) t.shape.push_back(mat->size[d]);
      t.data = mat->ptr<float>();
      t.count = mat->total();
      t.owner = mat;
      outputs_.push_back(std::move(t));
    }
  }

  Napi::Value Resolve(Napi::Env env) override { return outpost::WriteOutputs(env, outputs_); }

 private:
  std::shared_ptr<NetState> state_;
  std::vector<outpost::InputTensor> inputs_;
  std::vector<std::string> names_;
  std::vector<std::string> outNames_;
  std::vector<outpost::OutputTensor> outputs_;
};

Napi::Value NetWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!state_) outpost::ThrowError(env, "RUNTIME_MODEL_UNLOADED", "the model was disposed; load it again");
  auto inputs = outpost::ReadInputs(env, info[0]);
  auto names = outpost::ReadStringArray(env, info[1], "output names");
  return outpost::Start(new ForwardWorker(env, state_, std::move(inputs), std::move(names)));
}

std::string OptString(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) outpost::ThrowError(env, "RUNTIME_INPUT_INVALID", "load() needs {framework, model, config?, target?}");
  Napi::Object o = info[0].As<Napi::Object>();
  LoadSpec spec{OptString(o, "framework"), OptString(o, "model"), OptString(o, "config"), OptString(o, "target")};
  if (spec.model.empty()) outpost::ThrowError(env, "RUNTIME_INPUT_INVALID", "load() needs the model file path");
  return outpost::Start(new LoadWorker(env, std::move(spec)));
}

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
  Napi::Function ctor = NetWrap::Define(env);
  NetWrap::constructor = new Napi::FunctionReference(Napi::Persistent(ctor));
  // Quiet OpenCV's own stderr logging; failures reach JS as coded errors instead.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
  exports.Set("noop", Napi::Function::New(env, outpost::Noop));
  exports.Set("abi", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_opencv_dnn, Init)
