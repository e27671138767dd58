// OpenVINO addon (API 2.0 of OpenVINO 2022.3 LTS): imports a compiled Myriad .blob on the MYRIAD
// device (the plugin later releases dropped) or reads a DLDT .xml + .bin and compiles it for CPU
// or GPU. NOT compile-checked against the 2022.3 headers (they could not be fetched here): the
// signatures it calls were read in the real headers and it was type-checked against those
// (docs/addons.md); not exercised on a Myriad stick or with the OpenVINO libraries.
//
// Only the runtime headers are included (not openvino/openvino.hpp, which pulls in every op).
#include <openvino/core/except.hpp>
#include <openvino/core/type/float16.hpp>
#include <openvino/core/version.hpp>
#include <openvino/runtime/core.hpp>

#include <algorithm>
#include <cmath>
#include <exception>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "model_wrap.h"

namespace {

using outpost::AddonError;

ov::Core& TheCore() {
  static ov::Core core;  // plugin discovery is costly: one Core per process
  return core;
}

// One input or output of a compiled model, read once in Open so that Run and Info never ask
// OpenVINO again (Info runs on the JS thread, where an OpenVINO exception must not escape).
struct Port {
  std::string name;
  ov::Shape shape;
  ov::element::Type type;
  size_t count = 0;
};

std::vector<Port> Ports(const std::vector<ov::Output<const ov::Node>>& ports, const char* what) {
  std::vector<Port> out;
  for (size_t i = 0; i < ports.size(); ++i) {
    const auto& p = ports[i];
    Port port;
    // get_any_name() throws on a nameless port; such ports are named by position.
    port.name = p.get_names().empty() ? std::string(what) + std::to_string(i) : p.get_any_name();
    if (!p.get_partial_shape().is_static()) {
      throw AddonError("ADDON_MODEL_INVALID", std::string(what) + " '" + port.name + "' has a dynamic shape; export the model with fixed shapes");
    }
    port.shape = p.get_shape();
    port.type = p.get_element_type();
    port.count = ov::shape_size(port.shape);
    out.push_back(std::move(port));
  }
  return out;
}

bool Readable(const ov::element::Type& t) { return t == ov::element::f32 || t == ov::element::f16 || t == ov::element::u8; }

// Converts the caller's float32 values to the element type the compiled input wants. Myriad
// blobs are often compiled with U8 or FP16 inputs; U8 takes 0..255 pixel values (rounded).
ov::Tensor HostInput(const Port& p, const outpost::InputTensor& src) {
  if (p.type == ov::element::f32) {
    // A tensor over the caller's bytes (no copy); they stay borrowed until the run settles.
    return ov::Tensor(ov::element::f32, p.shape, const_cast<float*>(src.data));
  }
  ov::Tensor t(p.type, p.shape);
  if (p.type == ov::element::f16) {
    ov::float16* dst = t.data<ov::float16>();
    for (size_t k = 0; k < p.count; ++k) dst[k] = ov::float16(src.data[k]);
  } else {
    uint8_t* dst = t.data<uint8_t>();
    for (size_t k = 0; k < p.count; ++k) dst[k] = static_cast<uint8_t>(std::clamp(std::lround(src.data[k]), 0L, 255L));
  }
  return t;
}

struct OpenVino {
  struct State {
    ov::CompiledModel compiled;
    ov::InferRequest request;  // one request: ModelWrap serialises the model's runs
    std::vector<Port> inputs, outputs;
  };

  struct Spec {
    std::string kind, model, weights, device;
  };

  static constexpr const char* kClassName = "OpenVinoModel";
  static constexpr const char* kRunMethod = "run";

  static Spec ReadSpec(Napi::Env env, Napi::Value arg) {
    Napi::Object o = outpost::SpecObject(env, arg, "{kind, model, weights?, device}");
    Spec s{outpost::SpecString(o, "kind"), outpost::SpecString(o, "model"), outpost::SpecString(o, "weights"), outpost::SpecString(o, "device")};
    if (s.kind != "blob" && s.kind != "ir") outpost::ThrowError(env, "RUNTIME_INPUT_INVALID", "load(): kind must be 'blob' or 'ir', not '" + s.kind + "'");
    if (s.model.empty() || s.device.empty()) outpost::ThrowError(env, "RUNTIME_INPUT_INVALID", "load() needs the model path and the device");
    return s;
  }

  static void Open(const Spec& s, State& st) {
    try {
      if (s.kind == "blob") {
        std::ifstream blob(s.model, std::ios::binary);
        if (!blob) throw AddonError("ADDON_MODEL_FILE_MISSING", "cannot open " + s.model);
        st.compiled = TheCore().import_model(blob, s.device);
      } else {
        std::shared_ptr<ov::Model> model = TheCore().read_model(s.model, s.weights);
        st.compiled = TheCore().compile_model(model, s.device);
      }
      st.request = st.compiled.create_infer_request();
      st.inputs = Ports(st.compiled.inputs(), "input");
      st.outputs = Ports(st.compiled.outputs(), "output");
    } catch (const AddonError&) {
      throw;
    } catch (const std::exception& e) {
      // ov::Exception and the plugins' InferenceEngine exceptions are both std::exceptions.
      throw AddonError("ADDON_MODEL_INVALID", "OpenVINO could not load the model on " + s.device + ": " + e.what());
    }
    for (const auto& p : st.inputs)
      if (!Readable(p.type)) throw AddonError("ADDON_MODEL_INVALID", "input '" + p.name + "' is " + p.type.get_type_name() + "; Outpost feeds f32, f16 or u8");
    for (const auto& p : st.outputs)
      if (p.type != ov::element::f32 && p.type != ov::element::f16) {
        throw AddonError("ADDON_MODEL_INVALID", "output '" + p.name + "' is " + p.type.get_type_name() + "; Outpost reads f32 or f16");
      }
  }

  static void Run(State& st, const outpost::RunRequest& req, std::vector<outpost::OutputTensor>& out) {
    const auto& in = req.inputs;
    if (in.size() != st.inputs.size()) throw AddonError("RUNTIME_INPUT_INVALID", "the model has " + std::to_string(st.inputs.size()) + " inputs");
    try {
      for (size_t i = 0; i < st.inputs.size(); ++i) {
        const Port& p = st.inputs[i];
        // Inputs are matched by name when given, else by position.
        const outpost::InputTensor* src = &in[i];
        for (const auto& t : in)
          if (t.name == p.name) src = &t;
        if (src->count != p.count) throw AddonError("RUNTIME_INPUT_INVALID", "input '" + p.name + "' needs " + std::to_string(p.count) + " values");
        st.request.set_input_tensor(i, HostInput(p, *src));
      }
      st.request.infer();
      for (size_t i = 0; i < st.outputs.size(); ++i) {
        const Port& p = st.outputs[i];
        ov::Tensor t = st.request.get_output_tensor(i);
        auto host = std::make_shared<std::vector<float>>(t.get_size());
        if (t.get_element_type() == ov::element::f32) {
          std::copy_n(t.data<const float>(), t.get_size(), host->data());
        } else {
          const ov::float16* src = t.data<const ov::float16>();
          for (size_t k = 0; k < t.get_size(); ++k) (*host)[k] = static_cast<float>(src[k]);
        }
        const ov::Shape shape = t.get_shape();
        out.push_back({p.name, std::vector<int64_t>(shape.begin(), shape.end()), host->data(), host->size(), host});
      }
    } catch (const AddonError&) {
      throw;
    } catch (const std::exception& e) {
      throw AddonError("RUNTIME_INFERENCE_FAILED", std::string("OpenVINO inference failed: ") + e.what());
    }
  }

  static Napi::Value Info(Napi::Env env, const State& st) {
    auto list = [&](const std::vector<Port>& ports) {
      Napi::Array a = Napi::Array::New(env, ports.size());
      for (uint32_t i = 0; i < ports.size(); ++i) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", ports[i].name);
        o.Set("shape", outpost::ToJsShape(env, std::vector<int64_t>(ports[i].shape.begin(), ports[i].shape.end())));
        o.Set("type", ports[i].type.get_type_name());
        a.Set(i, o);
      }
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("inputs", list(st.inputs));
    o.Set("outputs", list(st.outputs));
    return o;
  }
};

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
  outpost::ExportModelApi<OpenVino>(env, exports);
  exports.Set("devices", Napi::Function::New(env, Devices));
  exports.Set("version", Napi::Function::New(env, Version));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_openvino, Init)
