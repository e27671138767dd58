// HailoRT addon: runs a compiled .hef on a Hailo-8 through the HailoRT C API (hailort.h):
// virtual device -> HEF -> configured network group -> activated group with input/output
// virtual streams. Written against libhailort 4.x (checked with 4.18 and 5.2 headers); not yet
// exercised on a Hailo device (see docs/addons.md).
//
// The model JSON's quantize_input/quantize_output/input_format/output_format map to the vstream
// user buffer formats: quantized => UINT8 host data that HailoRT passes through unscaled,
// otherwise FLOAT32 that HailoRT (de)quantizes; a format name picks the host order.
#include <hailo/hailort.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "outpost_addon.h"

namespace {

using outpost::AddonError;

void Check(hailo_status st, const char* what) {
  if (st == HAILO_SUCCESS) return;
  throw AddonError(st == HAILO_INVALID_HEF ? "ADDON_MODEL_INVALID" : "ADDON_DEVICE_ERROR",
                   std::string(what) + " failed: " + hailo_get_status_message(st) + " (hailo_status " + std::to_string(st) + ")");
}

hailo_format_order_t OrderOf(const std::string& s) {
  if (s == "nhwc") return HAILO_FORMAT_ORDER_NHWC;
  if (s == "nchw") return HAILO_FORMAT_ORDER_NCHW;
  if (s == "nc") return HAILO_FORMAT_ORDER_NC;
  return HAILO_FORMAT_ORDER_AUTO;  // "auto", "none" or unset: the stream's own order
}

struct Options {
  std::string hef;
  bool quantizeInput = false;
  bool quantizeOutput = false;
  std::string inputFormat;
  std::string outputFormat;
};

struct Stream {
  std::string name;
  hailo_vstream_info_t info{};
  hailo_format_t format{};
  size_t frameSize = 0;
};

// Everything one loaded HEF owns; released in reverse order of creation.
struct HefState {
  hailo_vdevice vdevice = nullptr;
  hailo_hef hef = nullptr;
  hailo_configured_network_group group = nullptr;
  hailo_activated_network_group active = nullptr;
  std::vector<hailo_input_vstream> inputs;
  std::vector<hailo_output_vstream> outputs;
  std::vector<Stream> inInfo, outInfo;
  std::mutex mu;

  ~HefState() {
    if (!outputs.empty()) hailo_release_output_vstreams(outputs.data(), outputs.size());
    if (!inputs.empty()) hailo_release_input_vstreams(inputs.data(), inputs.size());
    if (active) hailo_deactivate_network_group(active);
    if (hef) hailo_release_hef(hef);
    if (vdevice) hailo_release_vdevice(vdevice);
  }
};

std::shared_ptr<HefState> Open(const Options& o) {
  auto s = std::make_shared<HefState>();
  hailo_vdevice_params_t vparams;
  Check(hailo_init_vdevice_params(&vparams), "hailo_init_vdevice_params");
  Check(hailo_create_vdevice(&vparams, &s->vdevice), "hailo_create_vdevice");
  Check(hailo_create_hef_file(&s->hef, o.hef.c_str()), "hailo_create_hef_file");
  hailo_configure_params_t cparams;
  Check(hailo_init_configure_params_by_vdevice(s->hef, s->vdevice, &cparams), "hailo_init_configure_params_by_vdevice");
  hailo_configured_network_group groups[HAILO_MAX_NETWORK_GROUPS];
  size_t nGroups = HAILO_MAX_NETWORK_GROUPS;
  Check(hailo_configure_vdevice(s->vdevice, s->hef, &cparams, groups, &nGroups), "hailo_configure_vdevice");
  if (nGroups != 1) throw AddonError("ADDON_MODEL_INVALID", "the HEF has " + std::to_string(nGroups) + " network groups; Outpost runs single-group HEFs");
  s->group = groups[0];

  const hailo_format_type_t inType = o.quantizeInput ? HAILO_FORMAT_TYPE_UINT8 : HAILO_FORMAT_TYPE_FLOAT32;
  const hailo_format_type_t outType = o.quantizeOutput ? HAILO_FORMAT_TYPE_UINT8 : HAILO_FORMAT_TYPE_FLOAT32;
  hailo_input_vstream_params_by_name_t inParams[16];
  hailo_output_vstream_params_by_name_t outParams[16];
  size_t nIn = 16, nOut = 16;
  // The bool was `quantized` before HailoRT 4.14 and is ignored since; the format type decides.
  Check(hailo_make_input_vstream_params(s->group, o.quantizeInput, inType, inParams, &nIn), "hailo_make_input_vstream_params");
  Check(hailo_make_output_vstream_params(s->group, o.quantizeOutput, outType, outParams, &nOut), "hailo_make_output_vstream_params");
  for (size_t i = 0; i < nIn; ++i) inParams[i].params.user_buffer_format.order = OrderOf(o.inputFormat);
  for (size_t i = 0; i < nOut; ++i) outParams[i].params.user_buffer_format.order = OrderOf(o.outputFormat);

  s->inputs.resize(nIn);
  s->outputs.resize(nOut);
  Check(hailo_create_input_vstreams(s->group, inParams, nIn, s->inputs.data()), "hailo_create_input_vstreams");
  Check(hailo_create_output_vstreams(s->group, outParams, nOut, s->outputs.data()), "hailo_create_output_vstreams");
  for (size_t i = 0; i < nIn; ++i) {
    Stream st{inParams[i].name, {}, inParams[i].params.user_buffer_format, 0};
    Check(hailo_get_input_vstream_info(s->inputs[i], &st.info), "hailo_get_input_vstream_info");
    Check(hailo_get_input_vstream_frame_size(s->inputs[i], &st.frameSize), "hailo_get_input_vstream_frame_size");
    s->inInfo.push_back(st);
  }
  for (size_t i = 0; i < nOut; ++i) {
    Stream st{outParams[i].name, {}, outParams[i].params.user_buffer_format, 0};
    Check(hailo_get_output_vstream_info(s->outputs[i], &st.info), "hailo_get_output_vstream_info");
    Check(hailo_get_output_vstream_frame_size(s->outputs[i], &st.frameSize), "hailo_get_output_vstream_frame_size");
    s->outInfo.push_back(st);
  }
  Check(hailo_activate_network_group(s->group, nullptr, &s->active), "hailo_activate_network_group");
  return s;
}

size_t ElementSize(const hailo_format_t& f) {
  return f.type == HAILO_FORMAT_TYPE_FLOAT32 ? 4 : f.type == HAILO_FORMAT_TYPE_UINT16 ? 2 : 1;
}

std::vector<int64_t> ShapeOf(const Stream& s) {
  if (s.info.format.order == HAILO_FORMAT_ORDER_HAILO_NMS) {
    return {1, static_cast<int64_t>(s.frameSize / ElementSize(s.format))};
  }
  return {1, s.info.shape.height, s.info.shape.width, s.info.shape.features};
}

class OpenWorker : public outpost::PromiseWorker {
 public:
  OpenWorker(Napi::Env env, Options o) : PromiseWorker(env), o_(std::move(o)) {}

 protected:
  void Run() override { state_ = Open(o_); }
  Napi::Value Resolve(Napi::Env env) override;

 private:
  Options o_;
  std::shared_ptr<HefState> state_;
};

class RunWorker : public outpost::PromiseWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<HefState> s, std::vector<outpost::InputTensor> in)
      : PromiseWorker(env), s_(std::move(s)), in_(std::move(in)) {}

 protected:
  void Run() override {
    std::lock_guard<std::mutex> lock(s_->mu);
    if (in_.size() != s_->inputs.size()) throw AddonError("RUNTIME_INPUT_INVALID", "the HEF has " + std::to_string(s_->inputs.size()) + " inputs");
    for (size_t i = 0; i < in_.size(); ++i) {
      const Stream& st = s_->inInfo[i];
      const size_t n = st.frameSize / ElementSize(st.format);
      if (in_[i].count != n) throw AddonError("RUNTIME_INPUT_INVALID", "input '" + st.name + "' needs " + std::to_string(n) + " values");
      if (st.format.type == HAILO_FORMAT_TYPE_FLOAT32) {
        Check(hailo_vstream_write_raw_buffer(s_->inputs[i], in_[i].data, st.frameSize), "hailo_vstream_write_raw_buffer");
      } else {
        // Quantized input: the float tensor carries 0..255 pixel values.
        std::vector<uint8_t> q(n);
        for (size_t k = 0; k < n; ++k) q[k] = static_cast<uint8_t>(std::clamp(std::lround(in_[i].data[k]), 0L, 255L));
        Check(hailo_vstream_write_raw_buffer(s_->inputs[i], q.data(), q.size()), "hailo_vstream_write_raw_buffer");
      }
    }
    for (size_t i = 0; i < s_->outputs.size(); ++i) {
      const Stream& st = s_->outInfo[i];
      std::vector<uint8_t> raw(st.frameSize);
      Check(hailo_vstream_read_raw_buffer(s_->outputs[i], raw.data(), raw.size()), "hailo_vstream_read_raw_buffer");
      const size_t n = st.frameSize / ElementSize(st.format);
      auto values = std::make_shared<std::vector<float>>(n);
      for (size_t k = 0; k < n; ++k) {
        (*values)[k] = st.format.type == HAILO_FORMAT_TYPE_FLOAT32 ? reinterpret_cast<const float*>(raw.data())[k]
                       : st.format.type == HAILO_FORMAT_TYPE_UINT16 ? reinterpret_cast<const uint16_t*>(raw.data())[k]
                                                                     : raw[k];
      }
      outpost::OutputTensor t{st.name, ShapeOf(st), values->data(), n, values};
      out_.push_back(std::move(t));
    }
  }
  Napi::Value Resolve(Napi::Env env) override { return outpost::WriteOutputs(env, out_); }

 private:
  std::shared_ptr<HefState> s_;
  std::vector<outpost::InputTensor> in_;
  std::vector<outpost::OutputTensor> out_;
};

class HefWrap : public Napi::ObjectWrap<HefWrap> {
 public:
  static Napi::FunctionReference* ctor;
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "HailoModel", {InstanceMethod("run", &HefWrap::RunJs), InstanceMethod("dispose", &HefWrap::Dispose),
                                           InstanceMethod("info", &HefWrap::Info)});
  }
  explicit HefWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HefWrap>(info) {
    auto* p = info[0].As<Napi::External<std::shared_ptr<HefState>>>().Data();
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
    auto list = [&](const std::vector<Stream>& v) {
      Napi::Array a = Napi::Array::New(env, v.size());
      for (uint32_t i = 0; i < v.size(); ++i) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", v[i].name);
        o.Set("shape", outpost::ToJsShape(env, ShapeOf(v[i])));
        o.Set("quantized", v[i].format.type != HAILO_FORMAT_TYPE_FLOAT32);
        a.Set(i, o);
      }
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("inputs", list(s_->inInfo));
    o.Set("outputs", list(s_->outInfo));
    return o;
  }
  std::shared_ptr<HefState> s_;
};

Napi::FunctionReference* HefWrap::ctor = nullptr;

Napi::Value OpenWorker::Resolve(Napi::Env env) {
  auto* p = new std::shared_ptr<HefState>(std::move(state_));
  return HefWrap::ctor->New({Napi::External<std::shared_ptr<HefState>>::New(env, p)});
}

Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) outpost::ThrowError(env, "RUNTIME_INPUT_INVALID", "load() needs {hef, quantizeInput, quantizeOutput, inputFormat, outputFormat}");
  Napi::Object o = info[0].As<Napi::Object>();
  auto str = [&](const char* k) { Napi::Value v = o.Get(k); return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string(); };
  auto flag = [&](const char* k) { Napi::Value v = o.Get(k); return v.IsBoolean() && v.As<Napi::Boolean>().Value(); };
  Options opts{str("hef"), flag("quantizeInput"), flag("quantizeOutput"), str("inputFormat"), str("outputFormat")};
  return outpost::Start(new OpenWorker(env, std::move(opts)));
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  hailo_version_t v{};
  Napi::Env env = info.Env();
  if (hailo_get_library_version(&v) != HAILO_SUCCESS) return env.Null();
  return Napi::String::New(env, std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.revision));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  HefWrap::ctor = new Napi::FunctionReference(Napi::Persistent(HefWrap::Define(env)));
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("version", Napi::Function::New(env, Version));
  exports.Set("noop", Napi::Function::New(env, outpost::Noop));
  exports.Set("abi", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_hailort, Init)
