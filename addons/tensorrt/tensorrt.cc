// TensorRT addon: deserialises a .trt/.bin engine and runs it on a CUDA stream with device
// buffers allocated once per model and reused by every run. Two API generations:
//  - TensorRT >= 8.5 (JetPack 5, TensorRT 10): tensors by name (getIOTensorName, setTensorAddress,
//    enqueueV3);
//  - TensorRT 8.0-8.4 (JetPack 4.6 ships 8.2): bindings (getBindingName, enqueueV2).
// Compile-checked against the public headers of 8.2, 8.5, 10.13 and 10.16 (docs/addons.md); not yet
// exercised on a Jetson. The engine's TensorRT version and device are checked in TypeScript
// before this runs (tensorrt-engine.ts); a version refusal from deserialisation is mapped too.
#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model_wrap.h"

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

std::vector<int64_t> ShapeOf(const nvinfer1::Dims& d) {
  std::vector<int64_t> s;
  for (int i = 0; i < d.nbDims; ++i) s.push_back(d.d[i]);
  return s;
}

void AddTensor(std::vector<IoTensor>& io, const std::string& name, bool input, const nvinfer1::Dims& dims, nvinfer1::DataType type) {
  if (type != nvinfer1::DataType::kFLOAT) {
    throw AddonError("ADDON_MODEL_INVALID", "engine tensor '" + name + "' is not float32; build the engine with float32 I/O (inner layers may be FP16/INT8)");
  }
  IoTensor t{name, input, ShapeOf(dims), 1, nullptr};
  for (int64_t d : t.shape) {
    if (d < 0) throw AddonError("ADDON_MODEL_INVALID", "engine tensor '" + name + "' has a dynamic shape; build the engine with fixed shapes");
    t.count *= static_cast<size_t>(d);
  }
  Cuda(cudaMalloc(&t.device, t.count * sizeof(float)), "cudaMalloc");
  io.push_back(std::move(t));
}

// One deserialised engine with its context, stream and device buffers. ModelWrap serialises
// runs: one execution context must not be enqueued from two threads at once.
struct TensorRt {
  struct State {
    nvinfer1::IRuntime* runtime = nullptr;
    nvinfer1::ICudaEngine* engine = nullptr;
    nvinfer1::IExecutionContext* context = nullptr;
    cudaStream_t stream = nullptr;
    std::vector<IoTensor> io;
    std::vector<void*> bindings;  // TensorRT < 8.5 only

    ~State() {
      for (auto& t : io)
        if (t.device) cudaFree(t.device);
      if (stream) cudaStreamDestroy(stream);
      delete context;  // TensorRT >= 8.0 objects are deleted, not destroy()ed
      delete engine;
      delete runtime;
    }
  };

  struct Spec {
    std::string path;
  };

  static constexpr const char* kClassName = "TensorRtEngine";
  static constexpr const char* kRunMethod = "run";

  static Spec ReadSpec(Napi::Env env, Napi::Value arg) {
    if (!arg.IsString()) outpost::ThrowError(env, "RUNTIME_INPUT_INVALID", "load() needs the engine file path");
    return Spec{arg.As<Napi::String>().Utf8Value()};
  }

  static void Open(const Spec& spec, State& s) {
    std::ifstream f(spec.path, std::ios::binary);
    std::vector<char> plan((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (plan.empty()) throw AddonError("ADDON_MODEL_FILE_MISSING", "cannot read the engine file " + spec.path);
    s.runtime = nvinfer1::createInferRuntime(TheLogger());
    if (!s.runtime) throw AddonError("ADDON_DEVICE_ERROR", "createInferRuntime failed: " + TheLogger().last());
    s.engine = s.runtime->deserializeCudaEngine(plan.data(), plan.size());
    if (!s.engine) {
      const std::string why = TheLogger().last();
      const bool version = why.find("ersion") != std::string::npos;  // "Version tag does not match", "expecting library version"
      throw AddonError(version ? "ADDON_ENGINE_VERSION_MISMATCH" : "ADDON_MODEL_INVALID", "TensorRT could not deserialise the engine: " + why);
    }
    s.context = s.engine->createExecutionContext();
    if (!s.context) throw AddonError("ADDON_DEVICE_ERROR", "createExecutionContext failed: " + TheLogger().last());
    Cuda(cudaStreamCreate(&s.stream), "cudaStreamCreate");
#if OUTPOST_TRT_BY_NAME
    for (int i = 0; i < s.engine->getNbIOTensors(); ++i) {
      const char* name = s.engine->getIOTensorName(i);
      AddTensor(s.io, name, s.engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT, s.engine->getTensorShape(name),
                s.engine->getTensorDataType(name));
      // Buffers are fixed for the model's life, so addresses are bound once here.
      if (!s.context->setTensorAddress(name, s.io.back().device)) throw AddonError("ADDON_DEVICE_ERROR", "setTensorAddress failed for " + std::string(name));
    }
#else
    for (int i = 0; i < s.engine->getNbBindings(); ++i) {
      AddTensor(s.io, s.engine->getBindingName(i), s.engine->bindingIsInput(i), s.engine->getBindingDimensions(i), s.engine->getBindingDataType(i));
      s.bindings.push_back(s.io.back().device);
    }
#endif
  }

  static void Run(State& s, const outpost::RunRequest& req, std::vector<outpost::OutputTensor>& out) {
    const auto& in = req.inputs;
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

  static Napi::Value Info(Napi::Env env, const State& s) {
    Napi::Array a = Napi::Array::New(env, s.io.size());
    for (uint32_t i = 0; i < s.io.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", s.io[i].name);
      o.Set("input", s.io[i].input);
      o.Set("shape", outpost::ToJsShape(env, s.io[i].shape));
      a.Set(i, o);
    }
    return a;
  }
};

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
  outpost::ExportModelApi<TensorRt>(env, exports);
  exports.Set("version", Napi::Function::New(env, Version));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_tensorrt, Init)
