// The Node-API surface every Outpost backend addon shares, written once: a `load(spec)` function
// that opens a model off the JS thread and resolves with a JS object whose methods are
// `<run>(inputs, outputNames?) -> Promise<outputs>`, `dispose()` and `info()`. A backend file
// keeps only its vendor SDK calls, in a Backend struct that provides (all static):
//
//   struct State;                 the loaded engine (vendor handles); default-constructible, and
//                                 its destructor releases whatever Open() managed to create
//   struct Spec;                  what load() needs (plain C++: paths, flags)
//   static constexpr const char* kClassName;   JS class name of a loaded model
//   static constexpr const char* kRunMethod;   "run" (vendors) or "forward" (OpenCV)
//   static Spec ReadSpec(Napi::Env, Napi::Value arg);                  JS thread
//   static void Open(const Spec&, State&);                              worker thread
//   static void Run(State&, const RunRequest&, std::vector<OutputTensor>&);  worker thread
//   static Napi::Value Info(Napi::Env, const State&);                   JS thread
//
// Invariants the template keeps, so no backend has to:
// - Open and Run never touch Node-API (they run on libuv worker threads, or inline on the JS
//   thread for runs that recently took under CallCost::kInlineMaxMicros); their AddonError
//   becomes a {code, message} rejection, any other exception RUNTIME_INFERENCE_FAILED.
// - Runs of one model are serialised by the model's mutex (no vendor execution context here may
//   be entered from two threads); Info reads only what Open wrote, so it takes no lock.
// - dispose() only drops the JS object's reference: a run in flight holds its own, so the engine
//   is freed after the last run settles, never under it.
// - A C++ exception never leaves a JS-thread callback as a crash: it is rethrown as a coded JS error.
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "outpost_addon.h"

namespace outpost {

// One run's inputs, read on the JS thread: tensors (borrowed, see InputTensor) and the output
// names asked for (empty: the backend's own outputs; vendor backends always return all).
struct RunRequest {
  std::vector<InputTensor> inputs;
  std::vector<std::string> outputNames;
};

// A loaded model: the backend's state plus the lock that serialises its runs.
template <class Backend>
struct Loaded {
  typename Backend::State state;
  std::mutex mu;
  // What this model's runs cost lately: cheap ones run on the JS thread (outpost_addon.h).
  CallCost cost;
};

// Runs `body` on the JS thread and turns a C++ exception into a thrown JS error with its code.
template <class F>
Napi::Value Guard(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const AddonError& e) {
    ThrowError(env, e.code(), e.what());
  } catch (const std::exception& e) {
    ThrowError(env, "RUNTIME_INFERENCE_FAILED", e.what());
  }
}

template <class Backend>
class ModelWrap : public Napi::ObjectWrap<ModelWrap<Backend>> {
  using Base = Napi::ObjectWrap<ModelWrap<Backend>>;
  using Handle = std::shared_ptr<Loaded<Backend>>;

 public:
  // Defines the JS class; its constructor is kept as this addon's instance data (one per Node
  // environment, so worker threads each get their own, freed with the environment).
  static void Define(Napi::Env env) {
    Napi::Function cls = Base::DefineClass(env, Backend::kClassName,
                                           {Base::InstanceMethod(Backend::kRunMethod, &ModelWrap::RunJs),
                                            Base::InstanceMethod("dispose", &ModelWrap::Dispose),
                                            Base::InstanceMethod("info", &ModelWrap::Info)});
    env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(cls)));
  }

  // Wraps a freshly opened model (JS thread). The External hands over a heap shared_ptr that
  // the constructor takes; JS code cannot reach the class, so nothing else constructs it.
  static Napi::Value Wrap(Napi::Env env, Handle handle) {
    auto* handed = new Handle(std::move(handle));
    return env.GetInstanceData<Napi::FunctionReference>()->New({Napi::External<Handle>::New(env, handed)});
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Base(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
      ThrowError(info.Env(), "RUNTIME_INPUT_INVALID", std::string(Backend::kClassName) + " is created by load(), not with new");
    }
    Handle* handed = info[0].As<Napi::External<Handle>>().Data();
    handle_ = std::move(*handed);
    delete handed;
  }

 private:
  class RunWorker : public PromiseWorker {
   public:
    RunWorker(Napi::Env env, Handle h, RunRequest req) : PromiseWorker(env), h_(std::move(h)), req_(std::move(req)) {}

   protected:
    void Run() override {
      std::lock_guard<std::mutex> lock(h_->mu);
      Backend::Run(h_->state, req_, out_);
    }
    bool RunIfFree() override {
      std::unique_lock<std::mutex> lock(h_->mu, std::try_to_lock);
      if (!lock.owns_lock()) return false;
      Backend::Run(h_->state, req_, out_);
      return true;
    }
    Napi::Value Resolve(Napi::Env env) override { return WriteOutputs(env, out_); }

   private:
    Handle h_;
    RunRequest req_;
    std::vector<OutputTensor> out_;
  };

  void RequireLoaded(Napi::Env env) const {
    if (!handle_) ThrowError(env, "RUNTIME_MODEL_UNLOADED", "the model was disposed; load it again");
  }

  Napi::Value RunJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireLoaded(env);
    RunRequest req{ReadInputs(env, info[0]), ReadStringArray(env, info[1], "output names")};
    Loaded<Backend>* loaded = handle_.get();
    return Start(env, new RunWorker(env, handle_, std::move(req)), &loaded->cost);
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    handle_.reset();
    return info.Env().Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireLoaded(env);
    return Guard(env, [&] { return Backend::Info(env, handle_->state); });
  }

  Handle handle_;
};

// Opens a model off the JS thread and resolves with its ModelWrap.
template <class Backend>
class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, typename Backend::Spec spec) : PromiseWorker(env), spec_(std::move(spec)) {}

 protected:
  void Run() override {
    auto loaded = std::make_shared<Loaded<Backend>>();
    Backend::Open(spec_, loaded->state);
    loaded_ = std::move(loaded);
  }
  Napi::Value Resolve(Napi::Env env) override { return ModelWrap<Backend>::Wrap(env, std::move(loaded_)); }

 private:
  typename Backend::Spec spec_;
  std::shared_ptr<Loaded<Backend>> loaded_;
};

template <class Backend>
Napi::Value LoadJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&] { return Start(env, new LoadWorker<Backend>(env, Backend::ReadSpec(env, info[0]))); });
}

// Exports what every backend addon has: load(), noop() (the bench's baseline) and abi, the
// version of this JS contract that native-loader.ts checks.
template <class Backend>
void ExportModelApi(Napi::Env env, Napi::Object exports) {
  ModelWrap<Backend>::Define(env);
  exports.Set("load", Napi::Function::New(env, LoadJs<Backend>));
  exports.Set("noop", Napi::Function::New(env, Noop));
  exports.Set("abi", Napi::Number::New(env, 1));
}

// Reads a string property of a load() spec ("" when absent or not a string).
inline std::string SpecString(Napi::Object spec, const char* key) {
  Napi::Value v = spec.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

// Reads a boolean property of a load() spec (false when absent or not a boolean).
inline bool SpecBool(Napi::Object spec, const char* key) {
  Napi::Value v = spec.Get(key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

// The spec object itself, or a coded error naming what load() expects.
inline Napi::Object SpecObject(Napi::Env env, Napi::Value arg, const char* expected) {
  if (!arg.IsObject()) ThrowError(env, "RUNTIME_INPUT_INVALID", std::string("load() needs ") + expected);
  return arg.As<Napi::Object>();
}

}  // namespace outpost
