#include "outpost_addon.h"

#include <chrono>

#include <cstring>

namespace outpost {

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

void ThrowError(Napi::Env env, const std::string& code, const std::string& message) {
  throw MakeError(env, code, message);
}

Napi::Array ToJsShape(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array arr = Napi::Array::New(env, shape.size());
  for (uint32_t i = 0; i < shape.size(); ++i) arr.Set(i, Napi::Number::New(env, static_cast<double>(shape[i])));
  return arr;
}

std::vector<std::string> ReadStringArray(Napi::Env env, Napi::Value value, const char* what) {
  std::vector<std::string> out;
  if (value.IsUndefined() || value.IsNull()) return out;
  if (!value.IsArray()) ThrowError(env, "RUNTIME_INPUT_INVALID", std::string(what) + " must be an array of strings");
  Napi::Array arr = value.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value v = arr.Get(i);
    if (!v.IsString()) ThrowError(env, "RUNTIME_INPUT_INVALID", std::string(what) + " must be an array of strings");
    out.push_back(v.As<Napi::String>().Utf8Value());
  }
  return out;
}

std::vector<InputTensor> ReadInputs(Napi::Env env, Napi::Value value) {
  if (!value.IsArray()) ThrowError(env, "RUNTIME_INPUT_INVALID", "inputs must be an array of {name, shape, data}");
  Napi::Array arr = value.As<Napi::Array>();
  std::vector<InputTensor> inputs;
  inputs.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) ThrowError(env, "RUNTIME_INPUT_INVALID", "each input must be an object {name, shape, data}");
    Napi::Object obj = item.As<Napi::Object>();
    InputTensor t;
    Napi::Value name = obj.Get("name");
    t.name = name.IsString() ? name.As<Napi::String>().Utf8Value() : std::string();
    Napi::Value shape = obj.Get("shape");
    if (!shape.IsArray()) ThrowError(env, "RUNTIME_INPUT_INVALID", "input '" + t.name + "': shape must be an array");
    Napi::Array dims = shape.As<Napi::Array>();
    size_t expected = 1;
    for (uint32_t d = 0; d < dims.Length(); ++d) {
      Napi::Value dim = dims.Get(d);
      if (!dim.IsNumber()) ThrowError(env, "RUNTIME_INPUT_INVALID", "input '" + t.name + "': shape entries must be numbers");
      int64_t n = dim.As<Napi::Number>().Int64Value();
      if (n <= 0) ThrowError(env, "RUNTIME_INPUT_INVALID", "input '" + t.name + "': dimensions must be positive");
      t.shape.push_back(n);
      expected *= static_cast<size_t>(n);
    }
    Napi::Value data = obj.Get("data");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      ThrowError(env, "RUNTIME_INPUT_INVALID", "input '" + t.name + "': data must be a Float32Array");
    }
    Napi::Float32Array fa = data.As<Napi::Float32Array>();
    if (fa.ElementLength() != expected) {
      ThrowError(env, "RUNTIME_INPUT_INVALID", "input '" + t.name + "': data has " + std::to_string(fa.ElementLength()) +
                                                 " elements but the shape needs " + std::to_string(expected));
    }
    // ArrayBuffer() externalises an on-heap typed array, so the pointer below is stable.
    Napi::ArrayBuffer buffer = fa.ArrayBuffer();
    t.data = reinterpret_cast<const float*>(static_cast<const uint8_t*>(buffer.Data()) + fa.ByteOffset());
    t.count = expected;
    t.keep = Napi::Persistent(buffer);
    inputs.push_back(std::move(t));
  }
  return inputs;
}

namespace {

struct Holder {
  std::shared_ptr<void> owner;
};

void FinalizeHolder(napi_env, void*, void* hint) { delete static_cast<Holder*>(hint); }

Napi::Float32Array OutputArray(Napi::Env env, OutputTensor& out) {
  const size_t bytes = out.count * sizeof(float);
  if (bytes == 0) return Napi::Float32Array::New(env, 0);
  auto* holder = new Holder{out.owner};
  napi_value ab = nullptr;
  napi_status st = napi_create_external_arraybuffer(env, const_cast<float*>(out.data), bytes, FinalizeHolder, holder, &ab);
  if (st == napi_ok) return Napi::Float32Array::New(env, out.count, Napi::ArrayBuffer(env, ab), 0);
  // External buffers are refused under the V8 sandbox: copy once instead.
  delete holder;
  Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, bytes);
  std::memcpy(copy.Data(), out.data, bytes);
  return Napi::Float32Array::New(env, out.count, copy, 0);
}

}  // namespace

Napi::Array WriteOutputs(Napi::Env env, std::vector<OutputTensor>& outputs) {
  Napi::Array arr = Napi::Array::New(env, outputs.size());
  for (uint32_t i = 0; i < outputs.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, outputs[i].name));
    o.Set("shape", ToJsShape(env, outputs[i].shape));
    o.Set("data", OutputArray(env, outputs[i]));
    arr.Set(i, o);
  }
  return arr;
}

PromiseWorker::PromiseWorker(Napi::Env env) : deferred_(Napi::Promise::Deferred::New(env)) {}

bool PromiseWorker::Execute(bool inline_) {
  try {
    if (inline_) return RunIfFree();
    Run();
  } catch (const AddonError& e) {
    failed_ = true;
    code_ = e.code();
    message_ = e.what();
  } catch (const std::exception& e) {
    failed_ = true;
    message_ = e.what();
  } catch (...) {
    failed_ = true;
    message_ = "unknown native exception";
  }
  return true;
}

void PromiseWorker::Settle(Napi::Env env) {
  Napi::HandleScope scope(env);
  if (failed_) {
    deferred_.Reject(MakeError(env, code_, message_).Value());
    return;
  }
  try {
    deferred_.Resolve(Resolve(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (const std::exception& e) {
    deferred_.Reject(MakeError(env, "RUNTIME_INFERENCE_FAILED", e.what()).Value());
  }
}

namespace {
double MicrosSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

// The thread-pool path: an AsyncWorker that owns the call, runs it on a pool thread, and settles
// it back on the JS thread (inside the callback scope AsyncWorker opens, so promise reactions run).
class Hop : public Napi::AsyncWorker {
 public:
  Hop(Napi::Env env, std::unique_ptr<PromiseWorker> call, CallCost* cost)
      : Napi::AsyncWorker(env), call_(std::move(call)), cost_(cost) {}

 protected:
  void Execute() override {
    auto t0 = std::chrono::steady_clock::now();
    call_->Execute(false);
    if (cost_) cost_->Record(MicrosSince(t0));
  }
  void OnOK() override { call_->Settle(Env()); }

 private:
  std::unique_ptr<PromiseWorker> call_;
  CallCost* cost_;
};

class NoopWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;

 protected:
  void Run() override {}
  Napi::Value Resolve(Napi::Env env) override { return env.Null(); }
};

CallCost noopCost;
}  // namespace

Napi::Value Start(Napi::Env env, PromiseWorker* worker, CallCost* cost) {
  std::unique_ptr<PromiseWorker> call(worker);
  Napi::Promise promise = call->Promise();
  if (cost && cost->Cheap()) {
    auto t0 = std::chrono::steady_clock::now();
    if (call->Execute(true)) {
      cost->Record(MicrosSince(t0));
      call->Settle(env);
      return promise;
    }
  }
  (new Hop(env, std::move(call), cost))->Queue();
  return promise;
}

Napi::Value Noop(const Napi::CallbackInfo& info) {
  bool viaPool = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  return Start(info.Env(), new NoopWorker(info.Env()), viaPool ? nullptr : &noopCost);
}

}  // namespace outpost
