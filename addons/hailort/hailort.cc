// HailoRT addon: runs a compiled .hef on a Hailo-8 through the HailoRT C API (hailort.h):
// virtual device -> HEF -> configured network group -> activated group with input/output
// virtual streams. Written against libhailort 4.x, compile-checked with the 4.15, 4.17, 4.18
// and 5.2 headers; not yet exercised on a Hailo device (see docs/addons.md).
//
// The model JSON's quantize_input/quantize_output/input_format/output_format map to the vstream
// user buffer formats: quantized => UINT8 host data that HailoRT passes through unscaled,
// otherwise FLOAT32 that HailoRT (de)quantizes; a format name picks the host order.
#include <hailo/hailort.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "model_wrap.h"

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

struct HefSpec {
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

size_t ElementSize(const hailo_format_t& f) {
  return f.type == HAILO_FORMAT_TYPE_FLOAT32 ? 4 : f.type == HAILO_FORMAT_TYPE_UINT16 ? 2 : 1;
}

std::vector<int64_t> ShapeOf(const Stream& s) {
  if (s.info.format.order == HAILO_FORMAT_ORDER_HAILO_NMS) {
    return {1, static_cast<int64_t>(s.frameSize / ElementSize(s.format))};
  }
  return {1, s.info.shape.height, s.info.shape.width, s.info.shape.features};
}

// Everything one loaded HEF owns; released in reverse order of creation. ModelWrap serialises
// runs, so a frame's writes and reads never interleave with another run's.
struct HailoRt {
  struct State {
    hailo_vdevice vdevice = nullptr;
    hailo_hef hef = nullptr;
    hailo_configured_network_group group = nullptr;
    hailo_activated_network_group active = nullptr;
    std::vector<hailo_input_vstream> inputs;
    std::vector<hailo_output_vstream> outputs;
    std::vector<Stream> inInfo, outInfo;

    ~State() {
      if (!outputs.empty()) hailo_release_output_vstreams(outputs.data(), outputs.size());
      if (!inputs.empty()) hailo_release_input_vstreams(inputs.data(), inputs.size());
      if (active) hailo_deactivate_network_group(active);
      if (hef) hailo_release_hef(hef);
      if (vdevice) hailo_release_vdevice(vdevice);
    }
  };
  using Spec = HefSpec;

  static constexpr const char* kClassName = "HailoModel";
  static constexpr const char* kRunMethod = "run";

  static Spec ReadSpec(Napi::Env env, Napi::Value arg) {
    Napi::Object o = outpost::SpecObject(env, arg, "{hef, quantizeInput, quantizeOutput, inputFormat, outputFormat}");
    return Spec{outpost::SpecString(o, "hef"), outpost::SpecBool(o, "quantizeInput"), outpost::SpecBool(o, "quantizeOutput"),
                outpost::SpecString(o, "inputFormat"), outpost::SpecString(o, "outputFormat")};
  }

  static void Open(const Spec& o, State& s) {
    hailo_vdevice_params_t vparams;
    Check(hailo_init_vdevice_params(&vparams), "hailo_init_vdevice_params");
    Check(hailo_create_vdevice(&vparams, &s.vdevice), "hailo_create_vdevice");
    Check(hailo_create_hef_file(&s.hef, o.hef.c_str()), "hailo_create_hef_file");
    hailo_configure_params_t cparams;
    Check(hailo_init_configure_params_by_vdevice(s.hef, s.vdevice, &cparams), "hailo_init_configure_params_by_vdevice");
    hailo_configured_network_group groups[HAILO_MAX_NETWORK_GROUPS];
    size_t nGroups = HAILO_MAX_NETWORK_GROUPS;
    Check(hailo_configure_vdevice(s.vdevice, s.hef, &cparams, groups, &nGroups), "hailo_configure_vdevice");
    if (nGroups != 1) throw AddonError("ADDON_MODEL_INVALID", "the HEF has " + std::to_string(nGroups) + " network groups; Outpost runs single-group HEFs");
    s.group = groups[0];

    const hailo_format_type_t inType = o.quantizeInput ? HAILO_FORMAT_TYPE_UINT8 : HAILO_FORMAT_TYPE_FLOAT32;
    const hailo_format_type_t outType = o.quantizeOutput ? HAILO_FORMAT_TYPE_UINT8 : HAILO_FORMAT_TYPE_FLOAT32;
    hailo_input_vstream_params_by_name_t inParams[16];
    hailo_output_vstream_params_by_name_t outParams[16];
    size_t nIn = 16, nOut = 16;
    // The bool was `quantized` before HailoRT 4.14 and is ignored since; the format type decides.
    Check(hailo_make_input_vstream_params(s.group, o.quantizeInput, inType, inParams, &nIn), "hailo_make_input_vstream_params");
    Check(hailo_make_output_vstream_params(s.group, o.quantizeOutput, outType, outParams, &nOut), "hailo_make_output_vstream_params");
    for (size_t i = 0; i < nIn; ++i) inParams[i].params.user_buffer_format.order = OrderOf(o.inputFormat);
    for (size_t i = 0; i < nOut; ++i) outParams[i].params.user_buffer_format.order = OrderOf(o.outputFormat);

    // Handles join the State only once created, so ~State never releases a null vstream.
    std::vector<hailo_input_vstream> ins(nIn);
    Check(hailo_create_input_vstreams(s.group, inParams, nIn, ins.data()), "hailo_create_input_vstreams");
    s.inputs = std::move(ins);
    std::vector<hailo_output_vstream> outs(nOut);
    Check(hailo_create_output_vstreams(s.group, outParams, nOut, outs.data()), "hailo_create_output_vstreams");
    s.outputs = std::move(outs);
    for (size_t i = 0; i < nIn; ++i) {
      Stream st{inParams[i].name, {}, inParams[i].params.user_buffer_format, 0};
      Check(hailo_get_input_vstream_info(s.inputs[i], &st.info), "hailo_get_input_vstream_info");
      Check(hailo_get_input_vstream_frame_size(s.inputs[i], &st.frameSize), "hailo_get_input_vstream_frame_size");
      s.inInfo.push_back(st);
    }
    for (size_t i = 0; i < nOut; ++i) {
      Stream st{outParams[i].name, {}, outParams[i].params.user_buffer_format, 0};
      Check(hailo_get_output_vstream_info(s.outputs[i], &st.info), "hailo_get_output_vstream_info");
      Check(hailo_get_output_vstream_frame_size(s.outputs[i], &st.frameSize), "hailo_get_output_vstream_frame_size");
      s.outInfo.push_back(st);
    }
    Check(hailo_activate_network_group(s.group, nullptr, &s.active), "hailo_activate_network_group");
  }

  static void Run(State& s, const outpost::RunRequest& req, std::vector<outpost::OutputTensor>& out) {
    const auto& in = req.inputs;
    if (in.size() != s.inputs.size()) throw AddonError("RUNTIME_INPUT_INVALID", "the HEF has " + std::to_string(s.inputs.size()) + " inputs");
    for (size_t i = 0; i < in.size(); ++i) {
      const Stream& st = s.inInfo[i];
      const size_t n = st.frameSize / ElementSize(st.format);
      if (in[i].count != n) throw AddonError("RUNTIME_INPUT_INVALID", "input '" + st.name + "' needs " + std::to_string(n) + " values");
      if (st.format.type == HAILO_FORMAT_TYPE_FLOAT32) {
        Check(hailo_vstream_write_raw_buffer(s.inputs[i], in[i].data, st.frameSize), "hailo_vstream_write_raw_buffer");
      } else {
        // Quantized input: the float tensor carries 0..255 pixel values.
        std::vector<uint8_t> q(n);
        for (size_t k = 0; k < n; ++k) q[k] = static_cast<uint8_t>(std::clamp(std::lround(in[i].data[k]), 0L, 255L));
        Check(hailo_vstream_write_raw_buffer(s.inputs[i], q.data(), q.size()), "hailo_vstream_write_raw_buffer");
      }
    }
    for (size_t i = 0; i < s.outputs.size(); ++i) {
      const Stream& st = s.outInfo[i];
      std::vector<uint8_t> raw(st.frameSize);
      Check(hailo_vstream_read_raw_buffer(s.outputs[i], raw.data(), raw.size()), "hailo_vstream_read_raw_buffer");
      const size_t n = st.frameSize / ElementSize(st.format);
      auto values = std::make_shared<std::vector<float>>(n);
      for (size_t k = 0; k < n; ++k) {
        (*values)[k] = st.format.type == HAILO_FORMAT_TYPE_FLOAT32 ? reinterpret_cast<const float*>(raw.data())[k]
                       : st.format.type == HAILO_FORMAT_TYPE_UINT16 ? reinterpret_cast<const uint16_t*>(raw.data())[k]
                                                                     : raw[k];
      }
      out.push_back({st.name, ShapeOf(st), values->data(), n, values});
    }
  }

  static Napi::Value Info(Napi::Env env, const State& s) {
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
    o.Set("inputs", list(s.inInfo));
    o.Set("outputs", list(s.outInfo));
    return o;
  }
};

Napi::Value Version(const Napi::CallbackInfo& info) {
  hailo_version_t v{};
  Napi::Env env = info.Env();
  if (hailo_get_library_version(&v) != HAILO_SUCCESS) return env.Null();
  return Napi::String::New(env, std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.revision));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  outpost::ExportModelApi<HailoRt>(env, exports);
  exports.Set("version", Napi::Function::New(env, Version));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_hailort, Init)
