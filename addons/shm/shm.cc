// outpost_shm: zero-copy shared-memory regions that a client cannot turn into a crash
// (docs/local-api.md, "Shared memory: zero copy and the SIGBUS guard").
//
// map(fd, offset, length, writable) maps a region's window of the object the agent opened at
// registration (MAP_SHARED) and hands it to JavaScript as an external ArrayBuffer, so an input
// tensor is a typed-array view that onnxruntime reads in place and an output is one
// TypedArray.set into the client's memory.
//
// The hazard: a client may ftruncate its object after registering. An access through a mapping
// to a page past the object's new end raises SIGBUS, whose default action kills the agent, and no
// check in JavaScript can close the window between a size check and the access (the client runs
// concurrently). The guard is the one Wayland compositors use for client wl_shm pools
// (wayland-server's wl_shm_buffer_begin_access, wlroots, weston): one SIGBUS handler that, when
// the fault address lies inside one of our mappings, maps anonymous memory MAP_FIXED over that
// whole mapping, flags it broken and returns. The faulting instruction then runs again and reads
// zeros (or writes into private memory nobody reads); the agent finishes the request, sees the
// flag, refuses the request with API_SHM_OUT_OF_RANGE and keeps refusing the region until the
// client registers it again. Faults outside our mappings go to the handler that was there before
// ours, or, where there was none, to the default action (the process dies as it would have).
//
// Signal safety: the handler touches only the fixed table below (lock-free atomics, no malloc, no
// locks) and calls mmap(2), a plain system call (what the Wayland implementations do too).
// Unmapping races the handler with a Dekker-style pair: the handler raises the slot's `busy`
// count before it reads `state`, unmap clears `state` before it reads `busy` (both seq_cst), so
// either the handler sees the slot retired or unmap waits for the handler to finish: the handler
// never maps over an address range that has been given back to the process.
//
// Lifetime is the caller's (agent/api/shm.ts): a region in use by a request is not unmapped;
// unmap(slot, buffer) detaches the ArrayBuffer first (every view over it then has length 0, so
// JavaScript can no longer reach the memory) and then munmaps. A buffer collected without unmap
// is unmapped by its finalizer.
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "outpost_addon.h"

namespace {

// More than the agent's default bound of 64 regions; a registry configured beyond it falls back to
// pread for the regions that find no slot.
constexpr int kSlots = 256;

enum : int { kFree = 0, kBusy = 1, kLive = 2 };

struct Slot {
  std::atomic<int> state{kFree};
  std::atomic<int> busy{0};
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> length{0};
  std::atomic<int> prot{0};
  // Changes at every map and unmap, so a finalizer of an old buffer cannot release a new mapping.
  std::atomic<uint32_t> gen{0};
};

Slot gSlots[kSlots];
// 1 once the guard replaced the slot's mapping. (Not exposed as an external ArrayBuffer over this
// static array: V8 refuses a second external buffer over the same memory, which a second
// Node-API environment loading the addon would create.)
std::atomic<int32_t> gBroken[kSlots];
static_assert(std::atomic<int32_t>::is_always_lock_free, "the handler needs lock-free atomics");
static_assert(std::atomic<uintptr_t>::is_always_lock_free, "the handler needs lock-free atomics");
std::atomic<uint64_t> gFaults{0};

struct sigaction gPrevious;
std::atomic<bool> gInstalled{false};

void Chain(int sig, siginfo_t* info, void* uctx) {
  if (gPrevious.sa_flags & SA_SIGINFO) {
    if (gPrevious.sa_sigaction != nullptr) gPrevious.sa_sigaction(sig, info, uctx);
    return;
  }
  if (gPrevious.sa_handler != SIG_DFL && gPrevious.sa_handler != SIG_IGN) {
    gPrevious.sa_handler(sig);
    return;
  }
  // No handler before ours: the default action, as if we had never been here. The signal is
  // blocked while this handler runs, so raise() delivers it on return, before the access retries.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  raise(sig);
}

void OnSigbus(int sig, siginfo_t* info, void* uctx) {
  const int saved = errno;
  // si_code <= 0: sent by kill/sigqueue/tgkill, not a fault; si_addr means nothing then.
  if (info != nullptr && info->si_code > 0) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
    for (int i = 0; i < kSlots; i++) {
      Slot& s = gSlots[i];
      s.busy.fetch_add(1);
      if (s.state.load() == kLive) {
        const uintptr_t start = s.start.load();
        const size_t length = s.length.load();
        if (addr >= start && addr - start < length) {
          void* p = mmap(reinterpret_cast<void*>(start), length, s.prot.load(),
                         MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          const bool ok = p != MAP_FAILED;
          if (ok) {
            gBroken[i].store(1);
            gFaults.fetch_add(1);
          }
          s.busy.fetch_sub(1);
          errno = saved;
          if (ok) return;
          Chain(sig, info, uctx);
          return;
        }
      }
      s.busy.fetch_sub(1);
    }
  }
  errno = saved;
  Chain(sig, info, uctx);
}

// Once per process, whichever Node-API environment loads the addon first.
bool InstallGuard(std::string* why) {
  bool expected = false;
  if (!gInstalled.compare_exchange_strong(expected, true)) return true;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &gPrevious) != 0) {
    gInstalled.store(false);
    *why = std::string("sigaction(SIGBUS) failed: ") + strerror(errno);
    return false;
  }
  return true;
}

// Takes slot `i` out of the table, waits for a handler still looking at it, and munmaps it.
void Release(int i) {
  Slot& s = gSlots[i];
  if (s.state.load() != kLive) return;
  s.state.store(kBusy);
  while (s.busy.load() != 0) sched_yield();
  munmap(reinterpret_cast<void*>(s.start.load()), s.length.load());
  s.start.store(0);
  s.length.store(0);
  s.gen.fetch_add(1);
  s.state.store(kFree);
}

uintptr_t Hint(int slot, uint32_t gen) {
  return (static_cast<uintptr_t>(gen) << 16) | static_cast<uintptr_t>(slot);
}

void Finalize(napi_env /*env*/, void* /*data*/, void* hint) {
  const uintptr_t h = reinterpret_cast<uintptr_t>(hint);
  const int slot = static_cast<int>(h & 0xffff);
  const uint32_t gen = static_cast<uint32_t>(h >> 16);
  if (slot < kSlots && gSlots[slot].gen.load() == gen) Release(slot);
}

// A non-negative integer argument (a NaN, a fraction or a negative double is refused before any
// cast: casting one is undefined behaviour).
double Count(Napi::Env env, const Napi::Value& v, const char* what, double max) {
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= max) || d != std::floor(d))
    outpost::ThrowError(env, "API_SHM_BAD_REQUEST", std::string(what) + " must be a non-negative integer");
  return d;
}

// map(fd, offset, length, writable) -> {slot, buffer}
Napi::Value MapCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[3].IsBoolean())
    outpost::ThrowError(env, "API_SHM_BAD_REQUEST", "map(fd, offset, length, writable)");
  const int fd = static_cast<int>(Count(env, info[0], "fd", 0x7fffffff));
  const double offset = Count(env, info[1], "offset", 9007199254740991.0);
  const double length = Count(env, info[2], "length", 9007199254740991.0);
  const bool writable = info[3].As<Napi::Boolean>().Value();
  if (length < 1) outpost::ThrowError(env, "API_SHM_BAD_REQUEST", "length must be at least 1");
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t off = static_cast<uint64_t>(offset);
  const uint64_t base = off - off % page;
  const uint64_t delta = off - base;
  const uint64_t span = delta + static_cast<uint64_t>(length);
  const uint64_t mapped = (span + page - 1) / page * page;
  if (mapped > SIZE_MAX || base > static_cast<uint64_t>(INT64_MAX))
    outpost::ThrowError(env, "API_SHM_LIMIT", "the region is larger than this process can map");
  int slot = -1;
  for (int i = 0; i < kSlots && slot < 0; i++) {
    int expected = kFree;
    if (gSlots[i].state.compare_exchange_strong(expected, kBusy)) slot = i;
  }
  if (slot < 0) outpost::ThrowError(env, "API_SHM_LIMIT", "every zero-copy mapping slot is in use");
  Slot& s = gSlots[slot];
  const int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* p = mmap(nullptr, static_cast<size_t>(mapped), prot, MAP_SHARED, fd, static_cast<off_t>(base));
  if (p == MAP_FAILED) {
    const int e = errno;
    s.state.store(kFree);
    outpost::ThrowError(env, "API_SHM_OBJECT_UNAVAILABLE", std::string("mmap failed: ") + strerror(e));
  }
  s.start.store(reinterpret_cast<uintptr_t>(p));
  s.length.store(static_cast<size_t>(mapped));
  s.prot.store(prot);
  gBroken[slot].store(0);
  const uint32_t gen = s.gen.fetch_add(1) + 1;
  s.state.store(kLive);
  napi_value buffer;
  napi_status st = napi_create_external_arraybuffer(env, static_cast<char*>(p) + delta, static_cast<size_t>(length),
                                                    Finalize, reinterpret_cast<void*>(Hint(slot, gen)), &buffer);
  if (st != napi_ok) {
    Release(slot);
    outpost::ThrowError(env, "API_SHM_OBJECT_UNAVAILABLE",
                        "this Node.js does not allow external ArrayBuffers (V8 sandbox); the agent reads with pread");
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("slot", Napi::Number::New(env, slot));
  out.Set("buffer", Napi::Value(env, buffer));
  return out;
}

// unmap(slot, buffer): detaches the buffer (views over it become empty), then munmaps.
Napi::Value UnmapCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int slot = static_cast<int>(Count(env, info[0], "slot", kSlots - 1));
  if (info.Length() > 1 && info[1].IsArrayBuffer()) {
    bool detached = false;
    napi_is_detached_arraybuffer(env, info[1], &detached);
    if (!detached && napi_detach_arraybuffer(env, info[1]) != napi_ok)
      outpost::ThrowError(env, "INTERNAL", "the mapping's ArrayBuffer could not be detached; it stays mapped");
  }
  Release(slot);
  return env.Undefined();
}

// size(fd) -> st_size, or -1 when fstat fails.
Napi::Value SizeCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = static_cast<int>(Count(env, info[0], "fd", 0x7fffffff));
  struct stat st;
  if (fstat(fd, &st) != 0) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, static_cast<double>(st.st_size));
}

// broken(slot) -> whether the guard replaced the slot's mapping since it was mapped.
Napi::Value BrokenCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int slot = static_cast<int>(Count(env, info[0], "slot", kSlots - 1));
  return Napi::Boolean::New(env, gBroken[slot].load() != 0);
}

Napi::Value FaultsCall(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(gFaults.load()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::string why;
  if (!InstallGuard(&why)) outpost::ThrowError(env, "INTERNAL", why);
  exports.Set("abi", Napi::Number::New(env, 1));
  exports.Set("map", Napi::Function::New(env, MapCall));
  exports.Set("unmap", Napi::Function::New(env, UnmapCall));
  exports.Set("size", Napi::Function::New(env, SizeCall));
  exports.Set("faults", Napi::Function::New(env, FaultsCall));
  exports.Set("broken", Napi::Function::New(env, BrokenCall));
  exports.Set("slots", Napi::Number::New(env, kSlots));
  return exports;
}

}  // namespace

NODE_API_MODULE(outpost_shm, Init)
