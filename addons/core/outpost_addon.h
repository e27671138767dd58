// Shared core of every Outpost native addon: an error type that carries a catalog code, a
// promise-returning async worker, and tensor marshalling between typed arrays and plain structs.
//
// Threading invariant: everything in Execute() runs on a libuv worker thread and must never touch
// Node-API (no Napi::Value, no Env). Inputs are captured in the JS thread by the worker's
// constructor; JS values are built only in OnOK/OnError, back on the JS thread.
#pragma once

#include <napi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace outpost {

// An engine failure with a code from protocol/errors/codes/addon.ts. The TypeScript side turns the
// rejected {code, message} object into an OutpostError, so the codes must exist in that catalog.
class AddonError : public std::runtime_error {
 public:
  AddonError(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// A JS Error with a string `code` property (the shape toOutpostError() understands).
Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message);

// Throws MakeError() as a JS exception (for synchronous argument checks).
[[noreturn]] void ThrowError(Napi::Env env, const std::string& code, const std::string& message);

// A float32 tensor whose bytes are borrowed from a JS ArrayBuffer, never copied.
//
// Ownership: `keep` holds a persistent reference to the ArrayBuffer for as long as the worker
// lives, so the bytes stay allocated until OnOK/OnError has run. V8 never moves an ArrayBuffer's
// backing store once it is externalised (ArrayBuffer() on a typed array does that), so `data`
// stays valid off the JS thread. The caller promises not to write the array until the promise
// settles (the TypeScript backends pass arrays they own).
struct InputTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
  size_t count = 0;
  Napi::Reference<Napi::ArrayBuffer> keep;
};

// An output tensor produced off the JS thread. `owner` keeps the memory alive; it is handed to
// V8 as an external ArrayBuffer whose finalizer releases it (no copy). Some runtimes forbid
// external buffers (V8 sandbox); then the bytes are copied once into a V8-owned buffer.
struct OutputTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
  size_t count = 0;
  std::shared_ptr<void> owner;
};

// Reads [{name, shape, data: Float32Array}] on the JS thread. Throws AddonError("RUNTIME_INPUT_INVALID").
std::vector<InputTensor> ReadInputs(Napi::Env env, Napi::Value value);

// Builds [{name, shape, data: Float32Array}] on the JS thread.
Napi::Array WriteOutputs(Napi::Env env, std::vector<OutputTensor>& outputs);

Napi::Array ToJsShape(Napi::Env env, const std::vector<int64_t>& shape);
std::vector<std::string> ReadStringArray(Napi::Env env, Napi::Value value, const char* what);

// The base of every asynchronous addon call: returns a promise, runs Run() off the JS thread,
// resolves with Resolve() or rejects with {code, message}. A C++ exception from Run() is caught
// here, so an engine failure never reaches the process as a crash.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env);
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;                        // worker thread: no Node-API here
  virtual Napi::Value Resolve(Napi::Env env) = 0;  // JS thread

 private:
  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error& error) final;

  Napi::Promise::Deferred deferred_;
  std::string code_ = "RUNTIME_INFERENCE_FAILED";
  std::string message_;
};

// Queues a worker and returns its promise (the worker deletes itself after OnOK/OnError).
inline Napi::Value Start(PromiseWorker* worker) {
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// A no-op asynchronous call: the baseline for measuring an addon's call overhead in bench/.
Napi::Value Noop(const Napi::CallbackInfo& info);

}  // namespace outpost
