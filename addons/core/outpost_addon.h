// Shared core of every Outpost native addon: an error type that carries a catalog code, a
// promise-returning async worker, and tensor marshalling between typed arrays and plain structs.
//
// Threading invariant: Run() runs on a libuv worker thread (or inline on the JS thread when the
// call is known to be cheap, see CallCost) and must never touch Node-API (no Napi::Value, no
// Env). Inputs are captured in the JS thread by the worker's constructor; JS values are built
// only in Settle(), on the JS thread.
#pragma once

#include <napi.h>

#include <atomic>
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

// What recent calls of one kind cost (a model's runs, the no-op), in microseconds of Run():
// an exponentially weighted average, written by whichever thread ran the call. Races between
// two writers lose a sample, never correctness: the value only chooses where the next call runs.
class CallCost {
 public:
  // Calls this cheap run on the JS thread: the thread-pool round trip (a wake-up of a pool
  // thread, then uv_async_send back to the loop: 15-80 us on a loaded 2-core machine,
  // docs/performance.md) would cost more than the work itself.
  static constexpr double kInlineMaxMicros = 20;
  bool Cheap() const { return ewma_.load(std::memory_order_relaxed) < kInlineMaxMicros; }
  void Record(double micros) {
    double prev = ewma_.load(std::memory_order_relaxed);
    ewma_.store(prev < 0 ? micros : prev * 0.8 + micros * 0.2, std::memory_order_relaxed);
  }

 private:
  // Unknown until the first call, which therefore always goes to the pool.
  std::atomic<double> ewma_{-1};
};

// The base of every asynchronous addon call: returns a promise, runs Run() off the JS thread
// (or, for calls whose CallCost says they are cheaper than the hop, on it), resolves with
// Resolve() or rejects with {code, message}. A C++ exception from Run() is caught here, so an
// engine failure never reaches the process as a crash.
class PromiseWorker {
 public:
  explicit PromiseWorker(Napi::Env env);
  virtual ~PromiseWorker() = default;
  Napi::Promise Promise() { return deferred_.Promise(); }

  // Any thread: runs Run() (RunIfFree() when `inline_` is set) with its exceptions captured.
  // Returns false when the inline attempt found the model busy; nothing ran then.
  bool Execute(bool inline_);
  // JS thread: settles the promise.
  void Settle(Napi::Env env);

 protected:
  virtual void Run() = 0;                          // no Node-API here
  virtual Napi::Value Resolve(Napi::Env env) = 0;  // JS thread
  // The inline path must never block the JS thread on a lock another run holds: a worker whose
  // Run() takes a lock overrides this to try the lock and return false when it is taken.
  virtual bool RunIfFree() {
    Run();
    return true;
  }

 private:
  Napi::Promise::Deferred deferred_;
  bool failed_ = false;
  std::string code_ = "RUNTIME_INFERENCE_FAILED";
  std::string message_;
};

// Starts a call and returns its promise; takes ownership of `worker`. With a CallCost, a call
// that recent history says is cheap runs inline (the promise is then already settled), anything
// else goes through the libuv thread pool and its time is recorded for the next decision.
Napi::Value Start(Napi::Env env, PromiseWorker* worker, CallCost* cost = nullptr);

// A no-op asynchronous call: the baseline for measuring an addon's call overhead in bench/.
// noop(true) always takes the thread pool (the cost of the hop itself).
Napi::Value Noop(const Napi::CallbackInfo& info);

}  // namespace outpost
