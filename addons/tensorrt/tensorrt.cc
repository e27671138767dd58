// TensorRT addon: deserialises a .trt/.bin engine and runs it on a CUDA stream with device
// buffers allocated once per model and reused by every run. Two API generations:
//  - TensorRT >= 8.5 (JetPack 5, TensorRT 10): tensors by name (getIOTensorName, setTensorAddress,
//    enqueueV3);
//  - TensorRT 8.0-8.4 (JetPack 4.6 ships 8.2): bindings (getBindingName, enqueueV2).
// Compile-checked against the public headers of 8.2, 8.5 and 10.13 (docs/addons.md); not yet
// exercised on a Jetson. The engine's TensorRT version and device are checked in TypeScript
// before this runs (tensorrt-engine.ts); a version refusal from deserialisation is mapped too.
#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "outpost_addon.h"

#define OUTPOST_TRT_BY_NAME (NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 5))

namespace {

using outpost::AddonError;

// Collects TensorRT's error messages so a failed deserialisation can say why.
class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity > Severity::kERROR) return;
    std::lock_guard<std::mutex> lock(mu_);
    last_ = msg;
  }
  std::string last() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  std::string last_;
};

Logger& TheLogger() {
  static Logger logger;
  return logger;
}

void Cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw AddonError("ADDON_DEVICE_ERROR", std::string(what) + " failed: " + cudaGetErrorString(e));
}

struct IoTensor {
  std::string name;
  bool input = false;
  std::vector<int64_t> shape;
  size_t count = 0;
  void* device = nullptr;
};

// One deserialised engine with its context, stream and device buffers. Runs are serialised by
// `mu`: one execution context must not be enqueued from two threads at once.
struct EngineState {
  nvinfer1::IRuntime* runtime = nullptr;
  nvinfer1::ICudaEngine* engine = nullptr;
  nvinfer1::IExecutionContext* context = nullptr;
  cudaStream_t stream = nullptr;
  std::vector<IoTensor> io;
  std::vector<void*> bindings;  // TensorRT < 8.5 only
  std::mutex mu;

  ~EngineState() {
    for (auto& t : io)
      if (t.device) cudaFree(t.device);
    if (stream) cudaStreamDestroy(stream);
    delete context;  // TensorRT >= 8.0 objects are deleted, not destroy()ed
    delete engine;
    delete runtime;
  }
};

std::vector<int64_t> ShapeOf(const nvinfer1::Dims& d) {
  std::vector<int64_t> s;
  for (int i = 0; i < d.nbDims; ++i) s.push_back(d.d[i]);
  return s;
}

void AddTensor(EngineState& s, const std::string& name, bool input, const nvinfer1::Dims& dims, nvinfer1::DataType type) {
  if (type != nvinfer1::DataType::kFLOAT) {
    throw AddonError("ADDON_MODEL_INVALID", "engine tensor '" + name + "' is not float32; build the engine with float32 I/O (inner layers may be FP16/INT8)");
  }
  IoTensor t{name, input, ShapeOf(dims), 1, nullptr};
  for (int64_t d : t.shape) {
    if (d < 0) throw AddonError("ADDON_MODEL_INVALID", "engine tensor '" + name + "' has a dynamic shape; build the engine with fixed shapes");
    t.count *= static_cast<size_t>(d);
  }
  Cuda(cudaMalloc(&t.device, t.count * sizeof(float)), "cudaMalloc");
  s.io.push_back(std::move(t));
}

std::shared_ptr<EngineState> Open(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> plan((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (plan.empty()) throw AddonError("ADDON_MODEL_FILE_MISSING", "cannot read the engine file " + path);
  auto s = std::make_shared<EngineState>();
  s->runtime = nvinfer1::createInferRuntime(TheLogger());
  if (!s->runtime) throw AddonError("ADDON_DEVICE_ERROR", "createInferRuntime failed: " + TheLogger().last());
  s->engine = s->runtime->deserializeCudaEngine(plan.data(), plan.size());
  if (!s->engine) {
    const std::string why = TheLogger().last();
    const bool version = why.find("ersion") != std::string::npos;  // "Version tag does not match", "expecting library version"
    throw AddonError(version ? "ADDON_ENGINE_VERSION_MISMATCH" : "ADDON_MODEL_INVALID", "TensorRT could not deserialise the engine: " + why);
  }
  s->context = s->engine->createExecutionContext();
  if (!s->context) throw AddonError("ADDON_DEVICE_ERROR", "createExecutionContext failed: " + TheLogger().last());
  Cuda(cudaStreamCreate(&s->stream), "cudaStreamCreate");
#if OUTPOST_TRT_BY_NAME
  for (int i = 0; i < s->engine->getNbIOTensors(); ++i) {
    const char* name = s->engine->getIOTensorName(i);
    AddTensor(*s, name, s->engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT, s->engine->getTensorShape(name),
              s->engine->getTensorDataType(name));
    // Buffers are fixed for the model's life, so addresses are bound once here.
    if (!s->context->setTensorAddress(name, s->io.back().device)) throw AddonError("ADDON_DEVICE_ERROR", "setTensorAddress failed for " + std::string(name));
  }
#else
  for (int i = 0; i < s->engine->getNbBindings(); ++i) {
    AddTensor(*s, s->engine->getBindingName(i), s->engine->bindingIsInput(i), s->engine->getBindingDimensions(i), s->engine->getBindingDataType(i));
    s->bindings.push_back(s->io.back().device);
  }
#endif
  return s;
}

void RunEngine(EngineState& s, const std::vector<outpost::InputTensor>& in, std::vector<outpost::OutputTensor>& out) {
  std::lock_guard<std::mutex> lock(s.mu);
  size_t k = 0;
  for (auto& t : s.io) {
    if (!t.input) continue;
    if (k >= in.size()) throw AddonError("RUNTIME_INPUT_INVALID", "input '" + t.name + "' is missing");
    // Inputs are matched by name when given, else by position.
    const outpost::InputTensor* src = &in[k++];
    for (const auto& i : in)
      if (i.name == t.name) src = &i;
    if (src->count != t.count) throw AddonError("RUNTIME_INPUT_INVALID", "input '" + t.name + "' needs " + std::to_string(t.count) + " values");
    Cuda(cudaMemcpyAsync(t.device, src->data, t.count * sizeof(float), cudaMemcpyHostToDevice, s.stream), "cudaMemcpyAsync (input)");
  }
#if OUTPOST_TRT_BY_NAME
  if (!s.context->enqueueV3(s.stream)) throw AddonError("RUNTIME_INFERENCE_FAILED", "enqueueV3 failed: " + TheLogger().last());
#else
  if (!s.context->enqueueV2(s.bindings.data(), s.stream, nullptr)) throw AddonError("RUNTIME_INFERENCE_FAILED", "enqueueV2 failed: " + TheLogger().last());
#endif
  for (auto& t : s.io) {
    if (t.input) continue;
    auto host = std::make_shared<std::vector<float>>(t.count);
    Cuda(cudaMemcpyAsync(host->data(), t.device, t.count * sizeof(float), cudaMemcpyDeviceToHost, s.stream), "cudaMemcpyAsync (output)");
    out.push_back({t.name, t.shape, host->data(), t.count, host});
  }
  Cuda(cudaStreamSynchronize(s.stream), "cudaStreamSynchronize");
}

class OpenWorker : public outpost::PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::string path) : PromiseWorker(env), path_(std::move(path)) {}

 protected:
  void Run() override { state_ = Open(path_); }
  Napi::Value Resolve(Napi::Env env) override;

 private:
  std::string path_;
  std::shared_ptr<EngineState> state_;
};

class RunWorker : public outpost::PromiseWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<EngineState> s, std::vector<outpost::InputTensor> in)
      : PromiseWorker(env), s_(std::move(s)), in_(std::move(in)) {}

 protected:
  void Run() override { RunEngine(*s_, in_, out_); }
  Napi::Value Resolve(Napi::Env env) override { return outpost::WriteOutputs(env, out_); }

 private:
  std::shared_ptr<EngineState> s_;
  std::vector<outpost::InputTensor> in_;
  std::vector<outpost::OutputTensor> out_;
};

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TensorRtEngine", {InstanceMethod("run", &EngineWrap::RunJs), InstanceMethod("dispose", &EngineWrap::Dispose),
                                               InstanceMethod("info", &EngineWrap::Info)});
  }
  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    auto* p = info[0].As<Napi::External<std::shared_ptr<EngineState>>>().Data();
    s_ = std::move(*p);
    delete p;
  }

 private:
  Napi::Value RunJs(const Napi::CallbackInfo& info) {
    if (!s_) outpost::ThrowError(info.Env(), "RUNTIME_MODEL_UNLOADED", "the model was disposed; load it again");
    return outpost::Start(new RunWorker(info.Env(), s_, outpost::ReadInputs(info.Env(), info[0])));
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    s_.reset();
    return info.Env().Undefined();
  }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!s_) outpost::ThrowError(env, "RUNTIME_MODEL_UNLOADED", "the model was disposed; load it again");
    Napi::Array a = Napi::Array::New(env, s_->io.size());
    for (uint32_t i = 0; i < s_->io.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", s_->io[i].name);
      o.Set("input", s_->io[i].input);
      o.Set("shape", outpost::ToJsShape(env, s_->io[i].shape));
      a.Set(i, o);
    }
    return a;
  }
  std::shared_ptr<EngineState> s_;
};

Napi::FunctionReference* EngineWrap::ctor = nullptr;

Napi::Value OpenWorker::Resolve(Napi::Env env) {
  auto* p = new std::shared_ptr<EngineState>(std::move(state_));
  return EngineWrap::ctor->New({Napi::External<std::shared_ptr<EngineState>>::New(env, p)});
}

Napi::Value Load(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) outpost::ThrowError(info.Env(), "RUNTIME_INPUT_INVALID", "load() needs the engine file path");
  return outpost::Start(new OpenWorker(info.Env(), info[0].As<Napi::String>().Utf8Value()));
}

// The library actually loaded (getInferLibVersion) and the headers compiled against.
Napi::Value Version(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const int v = getInferLibVersion();
  o.Set("library", v);
  o.Set("headers", std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "." + std::to_string(NV_TENSORRT_PATCH));
  int cuda = 0;
  cudaRuntimeGetVersion(&cuda);
  o.Set("cudaRuntime", cuda);
  int devices = 0;
  o.Set("cudaDevices", cudaGetDeviceCount(&devices) == cudaSuccess ? devices : 0);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  EngineWrap::ctor = new Napi::FunctionReference(Napi::Persistent(EngineWrap::Define(env)));
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("version", Napi::Function::New(env, Version));
  exports.Set("noop", Napi::Function::New(env, outpost::Noop));
  exports.Set("abi", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_tensorrt, Init)
