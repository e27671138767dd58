// OpenVINO addon (API 2.0 of OpenVINO 2022.3 LTS): imports a compiled Myriad .blob on the MYRIAD
// device (the plugin later releases dropped) or reads a DLDT .xml + .bin and compiles it for CPU
// or GPU. Written against openvino/runtime/core.hpp of 2022.3; NOT compile-checked here (the
// headers could not be fetched onto this machine) and not exercised on a Myriad stick.
#include <openvino/openvino.hpp>

#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "outpost_addon.h"

namespace {

using outpost::AddonError;

ov::Core& TheCore() {
  static ov::Core core;  // plugin discovery is costly: one Core per process
  return core;
}

struct OvState {
  ov::CompiledModel compiled;
  ov::InferRequest request;
  std::mutex mu;  // one InferRequest serves one inference at a time
};

struct Spec {
  std::string kind, model, weights, device;
};

std::vector<int64_t> ShapeOf(const ov::Shape& s) { return std::vector<int64_t>(s.begin(), s.end()); }

std::shared_ptr<OvState> Open(const Spec& s) {
  auto st = std::make_shared<OvState>();
  try {
    if (s.kind == "blob") {
      std::ifstream blob(s.model, std::ios::binary);
      if (!blob) throw AddonError("ADDON_MODEL_FILE_MISSING", "cannot open " + s.model);
      st->compiled = TheCore().import_model(blob, s.device);
    } else {
      std::shared_ptr<ov::Model> model = TheCore().read_model(s.model, s.weights);
      st->compiled = TheCore().compile_model(model, s.device);
    }
    st->request = st->compiled.create_infer_request();
  } catch (const AddonError&) {
    throw;
  } catch (const ov::Exception& e) {
    throw AddonError("ADDON_MODEL_INVALID", std::string("OpenVINO could not load the model on ") + s.device + ": " + e.what());
  }
  for (const auto& p : st->compiled.inputs())
    if (p.get_element_type() != ov::element::f32) throw AddonError("ADDON_MODEL_INVALID", "input '" + p.get_any_name() + "' is not f32");
  return st;
}

class OpenWorker : public outpost::PromiseWorker {
 public:
  OpenWorker(Napi::Env env, Spec s) : PromiseWorker(env), s_(std::move(s)) {}

 protected:
  void Run() override { st_ = Open(s_); }
  Napi::Value Resolve(Napi::Env env) override;

 private:
  Spec s_;
  std::shared_ptr<OvState> st_;
};

class RunWorker : public outpost::PromiseWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<OvState> s, std::vector<outpost::InputTensor> in)
      : PromiseWorker(env), s_(std::move(s)), in_(std::move(in)) {}

 protected:
  void Run() override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const auto inputs = s_->compiled.inputs();
    if (in_.size() != inputs.size()) throw AddonError("RUNTIME_INPUT_INVALID", "the model has " + std::to_string(inputs.size()) + " inputs");
    for (size_t i = 0; i < in_.size(); ++i) {
      ov::Shape shape(in_[i].shape.begin(), in_[i].shape.end());
      // A tensor over the caller's bytes (no copy); it lives until infer() returns.
      ov::Tensor t(ov::element::f32, shape, const_cast<float*>(in_[i].data));
      s_->request.set_input_tensor(i, t);
    }
    try {
      s_->request.infer();
    } catch (const ov::Exception& e) {
      throw AddonError("RUNTIME_INFERENCE_FAILED", std::string("OpenVINO inference failed: ") + e.what());
    }
    const auto outputs = s_->compiled.outputs();
    for (size_t i = 0; i < outputs.size(); ++i) {
      ov::Tensor t = s_->request.get_output_tensor(i);
      auto host = std::make_shared<std::vector<float>>(t.get_size());
      if (t.get_element_type() == ov::element::f32) {
        std::copy_n(t.data<float>(), t.get_size(), host->data());
      } else if (t.get_element_type() == ov::element::f16) {
        const ov::float16* src = t.data<ov::float16>();
        for (size_t k = 0; k < t.get_size(); ++k) (*host)[k] = static_cast<float>(src[k]);
      } else {
        throw AddonError("RUNTIME_INFERENCE_FAILED", "output '" + outputs[i].get_any_name() + "' is neither f32 nor f16");
      }
      out_.push_back({outputs[i].get_any_name(), ShapeOf(t.get_shape()), host->data(), host->size(), host});
    }
  }
  Napi::Value Resolve(Napi::Env env) override { return outpost::WriteOutputs(env, out_); }

 private:
  std::shared_ptr<OvState> s_;
  std::vector<outpost::InputTensor> in_;
  std::vector<outpost::OutputTensor> out_;
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "OpenVinoModel", {InstanceMethod("run", &ModelWrap::RunJs), InstanceMethod("dispose", &ModelWrap::Dispose),
                                              InstanceMethod("info", &ModelWrap::Info)});
  }
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    auto* p = info[0].As<Napi::External<std::shared_ptr<OvState>>>().Data();
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
    auto list = [&](const std::vector<ov::Output<const ov::Node>>& ports) {
      Napi::Array a = Napi::Array::New(env, ports.size());
      for (uint32_t i = 0; i < ports.size(); ++i) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", ports[i].get_any_name());
        o.Set("shape", outpost::ToJsShape(env, ShapeOf(ports[i].get_shape())));
        a.Set(i, o);
      }
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("inputs", list(s_->compiled.inputs()));
    o.Set("outputs", list(s_->compiled.outputs()));
    return o;
  }
  std::shared_ptr<OvState> s_;
};

Napi::FunctionReference* ModelWrap::ctor = nullptr;

Napi::Value OpenWorker::Resolve(Napi::Env env) {
  auto* p = new std::shared_ptr<OvState>(std::move(st_));
  return ModelWrap::ctor->New({Napi::External<std::shared_ptr<OvState>>::New(env, p)});
}

Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) outpost::ThrowError(env, "RUNTIME_INPUT_INVALID", "load() needs {kind, model, weights?, device}");
  Napi::Object o = info[0].As<Napi::Object>();
  auto str = [&](const char* k) { Napi::Value v = o.Get(k); return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string(); };
  return outpost::Start(new OpenWorker(env, Spec{str("kind"), str("model"), str("weights"), str("device")}));
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> devices;
  try {
    devices = TheCore().get_available_devices();
  } catch (const std::exception&) {
    // no plugin answered: report none
  }
  Napi::Array a = Napi::Array::New(env, devices.size());
  for (uint32_t i = 0; i < devices.size(); ++i) a.Set(i, devices[i]);
  return a;
}

Napi::Value Version(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), ov::get_openvino_version().buildNumber); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ModelWrap::ctor = new Napi::FunctionReference(Napi::Persistent(ModelWrap::Define(env)));
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("devices", Napi::Function::New(env, Devices));
  exports.Set("version", Napi::Function::New(env, Version));
  exports.Set("noop", Napi::Function::New(env, outpost::Noop));
  exports.Set("abi", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_openvino, Init)
