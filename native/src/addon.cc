// srgan_dnnl.node: N-API front of the oneDNN convolution kernels and our small training ops (src/models/backend/native/ is the only
// caller). It links no oneDNN: on first load in a process it sets OMP_WAIT_POLICY=PASSIVE (unless set)
// and then dlopens srgan_dnnl_core.so from its own directory (core_api.h says why).
//
// Zero-copy contract: every tensor lives in the tfjs wasm heap. A call receives the heap as a
// Uint8Array (the wasm module's HEAPU8, re-read by the caller after it allocated the outputs, since
// allocation may grow the heap and detach the old buffer) and an Int32Array of parameters holding the
// geometry and the byte offsets of the tensors in that heap. The pointers are used only during the
// call; no JS runs meanwhile, so the heap cannot move under us. Every offset is bounds-checked.
//
// Plain N-API (node_api.h) rather than node-addon-api: the surface is a handful of functions taking two
// typed arrays, and this keeps the optional rung free of npm dependencies (the build is offline and
// runs only when oneDNN is present).
//
// Parameter block (Int32Array, kParamCount words; keep in sync with src/models/backend/native/addon.ts):
//   0..16  geometry: n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pad top, left, bottom, right
//          (tfjs conventions: NHWC activations, HWIO weights, dilation 1 = dense)
//   17..20 byte offsets, read as uint32; 0 = absent (only the bias slot may be absent)
//            conv2d:               x, w, y, bias
//            conv2dBackpropInput:  dy, w, dx, -
//            conv2dBackpropFilter: x, dy, dw, db
//   21     activation (conv2d only): 0 none, 1 relu (leaky when alpha > 0), 2 relu6, 3 elu, 4 sigmoid
//   22     alpha, as float32 bits (LeakyReLU slope)
//
// The small training ops (native/src/train_ops.h) take the same (heap, params) pair, each with its
// own block; "f" marks float32 bits, offsets are uint32 as above and never 0:
//   batchNormForward:   0 rows (N·H·W), 1 c, 2 act (0 none, 1 LeakyReLU), 3 alpha f, 4 eps f,
//                       5 x, 6 gamma, 7 beta, 8 y, 9 mean, 10 var
//   batchNormBackward:  0..4 as forward, 5 x, 6 dy, 7 gamma, 8 beta, 9 mean, 10 var,
//                       11 dx, 12 dgamma, 13 dbeta
//   leakyRelu:          0 n, 1 alpha f, 5 x, 6 y
//   leakyReluGrad:      0 n, 1 alpha f, 5 x, 6 dy, 7 dx
//   maxPoolGrad:        0..11 n, ih, iw, c, oh, ow, kh, kw, sh, sw, pad top, pad left; 12 x, 13 dy, 14 dx
//   adam:               0 n, 1..8 lr, beta1, beta2, eps, 1 − beta1^t, 1 − beta2^t, 1 − beta1, 1 − beta2
//                       (all f); 9 var, 10 m, 11 v, 12 g, 13 var', 14 m', 15 v'
//   stridedCopy:        0 rank (1..8), 1..8 dims, 9..16 x strides, 17..24 y strides (elements),
//                       25 x start, 26 y start (elements), 27 x size, 28 y size (elements);
//                       29 x, 30 y (4-byte elements; a block of at least 31 words)

#define NAPI_VERSION 8
#include <node_api.h>

#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <string>

#include "core_api.h"

namespace {

// Bumped whenever the parameter block or the exports change; src/models/backend/native/addon.ts refuses a stale build.
constexpr int32_t kAbi = 3;
constexpr size_t kParamCount = 24;
constexpr size_t kOffsets = 17;
constexpr size_t kActivation = 21;
constexpr size_t kAlpha = 22;
constexpr size_t kErrLen = 1024;
constexpr size_t kCopyParams = 31;

using Geometry = srgan_geometry;

/**
 * Loads the core once per process (workers may race here, hence the mutex); never unloaded.
 * Returns null with `error` set when it cannot.
 */
const srgan_core_api* LoadCore(std::string* error) {
  static std::mutex mutex;
  static const srgan_core_api* api = nullptr;
  static std::string load_error;
  std::lock_guard<std::mutex> lock(mutex);
  if (api != nullptr || !load_error.empty()) {
    *error = load_error;
    return api;
  }
  // libgomp reads this once, when the core pulls it in; a user's own setting wins (overwrite = 0).
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  Dl_info self;
  std::string path = "srgan_dnnl_core.so";
  if (dladdr(reinterpret_cast<void*>(&LoadCore), &self) != 0 && self.dli_fname != nullptr) {
    const std::string me = self.dli_fname;
    const size_t slash = me.rfind('/');
    if (slash != std::string::npos) path = me.substr(0, slash + 1) + path;
  }
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    load_error = std::string("cannot load ") + path + ": " + (why != nullptr ? why : "unknown dlopen error");
  } else {
    using GetApi = const srgan_core_api* (*)();
    auto get = reinterpret_cast<GetApi>(dlsym(handle, "srgan_core_get_api"));
    const srgan_core_api* candidate = get != nullptr ? get() : nullptr;
    if (candidate == nullptr || candidate->abi != SRGAN_CORE_ABI) {
      load_error = path + " is not a matching srgan_dnnl core (rebuild with npm run build:native)";
    } else {
      api = candidate;
    }
  }
  *error = load_error;
  return api;
}

/** Per-environment state (main thread and each worker have their own). */
struct State {
  const srgan_core_api* api;
  srgan_core* core;
};

#define NAPI_OK(call)                                    \
  do {                                                   \
    if ((call) != napi_ok) {                             \
      ThrowPending(env, "srgan_dnnl: N-API call failed"); \
      return nullptr;                                    \
    }                                                    \
  } while (0)

void ThrowPending(napi_env env, const char* message) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "SRGAN_ERR_NATIVE", message);
}

napi_value Throw(napi_env env, const std::string& message) {
  napi_throw_error(env, "SRGAN_ERR_NATIVE", message.c_str());
  return nullptr;
}

State* GetState(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok) return nullptr;
  return static_cast<State*>(data);
}

/** The arguments every kernel call takes: the wasm heap and the parameter block. */
struct Call {
  uint8_t* heap = nullptr;
  size_t heap_bytes = 0;
  const int32_t* p = nullptr;
  size_t p_len = 0;
};

bool ReadCall(napi_env env, napi_callback_info info, Call* call) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    Throw(env, "srgan_dnnl: expected (heap: Uint8Array, params: Int32Array)");
    return false;
  }
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  napi_is_typedarray(env, argv[0], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array || data == nullptr) {
    Throw(env, "srgan_dnnl: heap must be a non-detached Uint8Array over the wasm memory");
    return false;
  }
  call->heap = static_cast<uint8_t*>(data);
  call->heap_bytes = length;
  napi_is_typedarray(env, argv[1], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[1], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_int32_array || length < kParamCount) {
    Throw(env, "srgan_dnnl: params must be an Int32Array of at least 24 words");
    return false;
  }
  call->p = static_cast<const int32_t*>(data);
  call->p_len = length;
  return true;
}

bool ReadGeometry(napi_env env, const Call& call, Geometry* g) {
  static_assert(sizeof(Geometry) == 17 * sizeof(int32_t), "srgan_geometry must be 17 packed int32");
  std::memcpy(g, call.p, sizeof *g);
  const int32_t positive[] = {g->n, g->ih, g->iw, g->ic, g->oh, g->ow, g->oc, g->kh, g->kw, g->sh, g->sw, g->dh, g->dw};
  for (int32_t v : positive) {
    if (v < 1) {
      Throw(env, "srgan_dnnl: every size, stride and dilation must be >= 1 (empty tensors are handled in JS)");
      return false;
    }
  }
  if (g->pad_top < 0 || g->pad_left < 0 || g->pad_bottom < 0 || g->pad_right < 0) {
    Throw(env, "srgan_dnnl: pads must be >= 0");
    return false;
  }
  // oneDNN's consistency rule: out = floor((in + pads - dilated kernel) / stride) + 1.
  const int64_t ekh = int64_t{g->kh - 1} * g->dh + 1;
  const int64_t ekw = int64_t{g->kw - 1} * g->dw + 1;
  const int64_t span_h = int64_t{g->ih} + g->pad_top + g->pad_bottom - ekh;
  const int64_t span_w = int64_t{g->iw} + g->pad_left + g->pad_right - ekw;
  if (span_h < 0 || span_w < 0 || span_h / g->sh + 1 != g->oh || span_w / g->sw + 1 != g->ow) {
    Throw(env, "srgan_dnnl: output size does not match input, kernel, stride, dilation and pads");
    return false;
  }
  return true;
}

/** The float pointer at offset slot `slot`, checked to hold `count` floats inside the heap. */
float* Tensor(napi_env env, const Call& call, size_t slot, int64_t count, bool optional, bool* ok) {
  const uint32_t offset = static_cast<uint32_t>(call.p[kOffsets + slot]);
  if (offset == 0 && optional) return nullptr;
  const uint64_t end = uint64_t{offset} + uint64_t(count) * sizeof(float);
  if (offset == 0 || offset % alignof(float) != 0 || end > call.heap_bytes) {
    Throw(env, "srgan_dnnl: tensor offset " + std::to_string(offset) + " (+" + std::to_string(count * 4) +
                   " bytes) is outside the heap (" + std::to_string(call.heap_bytes) + " bytes) or misaligned");
    *ok = false;
    return nullptr;
  }
  return reinterpret_cast<float*>(call.heap + offset);
}

/** The float pointer whose byte offset is in word `word`, checked to hold `count` elements inside the heap. */
template <typename T = float>
T* At(napi_env env, const Call& call, size_t word, int64_t count, bool* ok) {
  if (!*ok) return nullptr;
  const uint32_t offset = static_cast<uint32_t>(call.p[word]);
  const uint64_t end = uint64_t{offset} + uint64_t(count) * sizeof(T);
  if (offset == 0 || offset % alignof(T) != 0 || count < 0 || end > call.heap_bytes) {
    Throw(env, "srgan_dnnl: tensor offset " + std::to_string(offset) + " (+" + std::to_string(count * 4) +
                   " bytes) is outside the heap (" + std::to_string(call.heap_bytes) + " bytes) or misaligned");
    *ok = false;
    return nullptr;
  }
  return reinterpret_cast<T*>(call.heap + offset);
}

float FloatAt(const Call& call, size_t word) {
  float f;
  std::memcpy(&f, &call.p[word], sizeof f);
  return f;
}

enum class Kernel { kConv2D, kBackpropInput, kBackpropFilter };

napi_value RunKernel(napi_env env, napi_callback_info info, Kernel kernel) {
  State* state = GetState(env);
  if (state == nullptr) return Throw(env, "srgan_dnnl: not initialised in this environment");
  Call call;
  Geometry g;
  if (!ReadCall(env, info, &call) || !ReadGeometry(env, call, &g)) return nullptr;
  const int64_t x_size = int64_t{g.n} * g.ih * g.iw * g.ic;
  const int64_t y_size = int64_t{g.n} * g.oh * g.ow * g.oc;
  const int64_t w_size = int64_t{g.kh} * g.kw * g.ic * g.oc;
  const srgan_core_api& api = *state->api;
  char err[kErrLen] = {0};
  bool ok = true;
  int failed = 0;
  switch (kernel) {
    case Kernel::kConv2D: {
      const int32_t act = call.p[kActivation];
      if (act < 0 || act > 4) return Throw(env, "srgan_dnnl: unknown activation " + std::to_string(act));
      float alpha;
      std::memcpy(&alpha, &call.p[kAlpha], sizeof alpha);
      float* x = ok ? Tensor(env, call, 0, x_size, false, &ok) : nullptr;
      float* w = ok ? Tensor(env, call, 1, w_size, false, &ok) : nullptr;
      float* y = ok ? Tensor(env, call, 2, y_size, false, &ok) : nullptr;
      float* b = ok ? Tensor(env, call, 3, g.oc, true, &ok) : nullptr;
      if (ok) failed = api.forward(state->core, &g, x, w, b, y, act, alpha, err, sizeof err);
      break;
    }
    case Kernel::kBackpropInput: {
      float* dy = ok ? Tensor(env, call, 0, y_size, false, &ok) : nullptr;
      float* w = ok ? Tensor(env, call, 1, w_size, false, &ok) : nullptr;
      float* dx = ok ? Tensor(env, call, 2, x_size, false, &ok) : nullptr;
      if (ok) failed = api.backward_data(state->core, &g, dy, w, dx, err, sizeof err);
      break;
    }
    case Kernel::kBackpropFilter: {
      float* x = ok ? Tensor(env, call, 0, x_size, false, &ok) : nullptr;
      float* dy = ok ? Tensor(env, call, 1, y_size, false, &ok) : nullptr;
      float* dw = ok ? Tensor(env, call, 2, w_size, false, &ok) : nullptr;
      float* db = ok ? Tensor(env, call, 3, g.oc, true, &ok) : nullptr;
      if (ok) failed = api.backward_weights(state->core, &g, x, dy, dw, db, err, sizeof err);
      break;
    }
  }
  if (failed != 0) return Throw(env, err);
  return nullptr;  // undefined; an exception, if any, is already pending
}

napi_value Conv2D(napi_env env, napi_callback_info info) { return RunKernel(env, info, Kernel::kConv2D); }
napi_value BackpropInput(napi_env env, napi_callback_info info) { return RunKernel(env, info, Kernel::kBackpropInput); }
napi_value BackpropFilter(napi_env env, napi_callback_info info) {
  return RunKernel(env, info, Kernel::kBackpropFilter);
}

/** Reads the call and the per-environment state; null (with an exception pending) when either fails. */
State* Begin(napi_env env, napi_callback_info info, Call* call) {
  State* state = GetState(env);
  if (state == nullptr) {
    Throw(env, "srgan_dnnl: not initialised in this environment");
    return nullptr;
  }
  return ReadCall(env, info, call) ? state : nullptr;
}

bool Positive(napi_env env, std::initializer_list<int64_t> values, const char* what) {
  for (int64_t v : values) {
    if (v < 1) {
      Throw(env, std::string("srgan_dnnl: ") + what + " must be >= 1 (empty tensors are handled in JS)");
      return false;
    }
  }
  return true;
}

bool ReadNorm(napi_env env, const Call& call, srgan_norm* p) {
  p->rows = call.p[0];
  p->c = call.p[1];
  p->act = call.p[2];
  p->alpha = FloatAt(call, 3);
  p->eps = FloatAt(call, 4);
  if (!Positive(env, {p->rows, p->c}, "rows and channels")) return false;
  if (p->act < 0 || p->act > 1) {
    Throw(env, "srgan_dnnl: batch norm activation must be 0 (none) or 1 (LeakyReLU)");
    return false;
  }
  return true;
}

napi_value BatchNormForward(napi_env env, napi_callback_info info) {
  Call call;
  State* state = Begin(env, info, &call);
  srgan_norm p;
  if (state == nullptr || !ReadNorm(env, call, &p)) return nullptr;
  const int64_t size = p.rows * p.c;
  bool ok = true;
  const float* x = At(env, call, 5, size, &ok);
  const float* gamma = At(env, call, 6, p.c, &ok);
  const float* beta = At(env, call, 7, p.c, &ok);
  float* y = At(env, call, 8, size, &ok);
  float* mean = At(env, call, 9, p.c, &ok);
  float* var = At(env, call, 10, p.c, &ok);
  if (ok) state->api->batch_norm_forward(state->core, &p, x, gamma, beta, y, mean, var);
  return nullptr;
}

napi_value BatchNormBackward(napi_env env, napi_callback_info info) {
  Call call;
  State* state = Begin(env, info, &call);
  srgan_norm p;
  if (state == nullptr || !ReadNorm(env, call, &p)) return nullptr;
  const int64_t size = p.rows * p.c;
  bool ok = true;
  const float* x = At(env, call, 5, size, &ok);
  const float* dy = At(env, call, 6, size, &ok);
  const float* gamma = At(env, call, 7, p.c, &ok);
  const float* beta = At(env, call, 8, p.c, &ok);
  const float* mean = At(env, call, 9, p.c, &ok);
  const float* var = At(env, call, 10, p.c, &ok);
  float* dx = At(env, call, 11, size, &ok);
  float* dgamma = At(env, call, 12, p.c, &ok);
  float* dbeta = At(env, call, 13, p.c, &ok);
  if (ok) state->api->batch_norm_backward(state->core, &p, x, dy, gamma, beta, mean, var, dx, dgamma, dbeta);
  return nullptr;
}

napi_value LeakyRelu(napi_env env, napi_callback_info info) {
  Call call;
  State* state = Begin(env, info, &call);
  if (state == nullptr || !Positive(env, {call.p[0]}, "the element count")) return nullptr;
  const int64_t n = call.p[0];
  bool ok = true;
  const float* x = At(env, call, 5, n, &ok);
  float* y = At(env, call, 6, n, &ok);
  if (ok) state->api->leaky_relu(state->core, n, x, y, FloatAt(call, 1));
  return nullptr;
}

napi_value LeakyReluGrad(napi_env env, napi_callback_info info) {
  Call call;
  State* state = Begin(env, info, &call);
  if (state == nullptr || !Positive(env, {call.p[0]}, "the element count")) return nullptr;
  const int64_t n = call.p[0];
  bool ok = true;
  const float* x = At(env, call, 5, n, &ok);
  const float* dy = At(env, call, 6, n, &ok);
  float* dx = At(env, call, 7, n, &ok);
  if (ok) state->api->leaky_relu_grad(state->core, n, x, dy, dx, FloatAt(call, 1));
  return nullptr;
}

napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  Call call;
  State* state = Begin(env, info, &call);
  if (state == nullptr) return nullptr;
  srgan_pool g;
  static_assert(sizeof(srgan_pool) == 12 * sizeof(int32_t), "srgan_pool must be 12 packed int32");
  std::memcpy(&g, call.p, sizeof g);
  if (!Positive(env, {g.n, g.ih, g.iw, g.c, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw}, "every pool size and stride")) {
    return nullptr;
  }
  if (g.pad_top < 0 || g.pad_left < 0) return Throw(env, "srgan_dnnl: pads must be >= 0");
  bool ok = true;
  const float* x = At(env, call, 12, int64_t{g.n} * g.ih * g.iw * g.c, &ok);
  const float* dy = At(env, call, 13, int64_t{g.n} * g.oh * g.ow * g.c, &ok);
  float* dx = At(env, call, 14, int64_t{g.n} * g.ih * g.iw * g.c, &ok);
  if (ok) state->api->max_pool_grad(state->core, &g, x, dy, dx);
  return nullptr;
}

napi_value Adam(napi_env env, napi_callback_info info) {
  Call call;
  State* state = Begin(env, info, &call);
  if (state == nullptr || !Positive(env, {call.p[0]}, "the element count")) return nullptr;
  const int64_t n = call.p[0];
  const srgan_adam p{FloatAt(call, 1), FloatAt(call, 2), FloatAt(call, 3), FloatAt(call, 4),
                     FloatAt(call, 5), FloatAt(call, 6), FloatAt(call, 7), FloatAt(call, 8)};
  bool ok = true;
  const float* var = At(env, call, 9, n, &ok);
  const float* m = At(env, call, 10, n, &ok);
  const float* v = At(env, call, 11, n, &ok);
  const float* g = At(env, call, 12, n, &ok);
  float* var_out = At(env, call, 13, n, &ok);
  float* m_out = At(env, call, 14, n, &ok);
  float* v_out = At(env, call, 15, n, &ok);
  if (ok) state->api->adam(state->core, n, &p, var, m, v, g, var_out, m_out, v_out);
  return nullptr;
}

napi_value StridedCopy(napi_env env, napi_callback_info info) {
  Call call;
  State* state = Begin(env, info, &call);
  if (state == nullptr) return nullptr;
  if (call.p_len < kCopyParams) return Throw(env, "srgan_dnnl: stridedCopy needs 31 parameter words");
  const int32_t rank = call.p[0];
  if (rank < 1 || rank > 8) return Throw(env, "srgan_dnnl: stridedCopy rank must be 1..8");
  int64_t dims[8];
  int64_t in_strides[8];
  int64_t out_strides[8];
  // The last element each side touches, relative to its offset: every access stays below it.
  int64_t in_last = call.p[25];
  int64_t out_last = call.p[26];
  bool empty = false;
  for (int32_t k = 0; k < rank; k++) {
    dims[k] = call.p[1 + k];
    in_strides[k] = call.p[9 + k];
    out_strides[k] = call.p[17 + k];
    if (dims[k] < 0 || in_strides[k] < 0 || out_strides[k] < 0) {
      return Throw(env, "srgan_dnnl: stridedCopy dims and strides must be >= 0");
    }
    if (dims[k] == 0) empty = true;
    if (dims[k] > 0) {
      in_last += (dims[k] - 1) * in_strides[k];
      out_last += (dims[k] - 1) * out_strides[k];
    }
  }
  if (empty) return nullptr;
  const int64_t in_offset = call.p[25];
  const int64_t out_offset = call.p[26];
  const int64_t x_size = call.p[27];
  const int64_t y_size = call.p[28];
  if (in_offset < 0 || out_offset < 0 || in_last >= x_size || out_last >= y_size) {
    return Throw(env, "srgan_dnnl: stridedCopy reaches outside its tensors");
  }
  bool ok = true;
  const uint32_t* x = At<uint32_t>(env, call, 29, x_size, &ok);
  uint32_t* y = At<uint32_t>(env, call, 30, y_size, &ok);
  if (ok) state->api->strided_copy(state->core, rank, dims, in_strides, out_strides, x + in_offset, y + out_offset);
  return nullptr;
}

/**
 * configure(threads, activationLayout, precision): OpenMP threads for this JS thread; 0 nhwc, 1 oneDNN's
 * choice; 0 fp32, 1 bf16 convolutions. Throws with the reason where this CPU cannot run bf16, changing nothing.
 */
napi_value Configure(napi_env env, napi_callback_info info) {
  State* state = GetState(env);
  if (state == nullptr) return Throw(env, "srgan_dnnl: not initialised in this environment");
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int32_t threads = 0;
  int32_t layout = 0;
  int32_t precision = 0;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &threads) != napi_ok ||
      napi_get_value_int32(env, argv[1], &layout) != napi_ok || napi_get_value_int32(env, argv[2], &precision) != napi_ok ||
      threads < 1 || layout < 0 || layout > 1 || precision < 0 || precision > 1) {
    return Throw(env, "srgan_dnnl: configure(threads >= 1, layout 0 | 1, precision 0 | 1)");
  }
  char err[kErrLen] = {0};
  if (state->api->set_precision(state->core, precision, err, sizeof err) != 0) return Throw(env, err);
  state->api->set_threads(threads);
  state->api->set_activation_layout(state->core, layout);
  return nullptr;
}

/** version(): the core's description plus the OpenMP threads this JS thread will use. */
napi_value Version(napi_env env, napi_callback_info) {
  State* state = GetState(env);
  if (state == nullptr) return Throw(env, "srgan_dnnl: not initialised in this environment");
  char buf[256];
  state->api->version(buf, sizeof buf);
  const std::string s = std::string(buf) + ", " + std::to_string(state->api->max_threads()) + " threads";
  napi_value out;
  NAPI_OK(napi_create_string_utf8(env, s.c_str(), s.size(), &out));
  return out;
}

/** stats(): { plans, innerBytes, threads, describe: string[] } — for tests and the bench. */
napi_value Stats(napi_env env, napi_callback_info) {
  State* state = GetState(env);
  if (state == nullptr) return Throw(env, "srgan_dnnl: not initialised in this environment");
  napi_value out, plans, bytes, threads, lines;
  NAPI_OK(napi_create_object(env, &out));
  const srgan_core_api& api = *state->api;
  const size_t count = api.plan_count(state->core);
  NAPI_OK(napi_create_uint32(env, static_cast<uint32_t>(count), &plans));
  NAPI_OK(napi_create_double(env, static_cast<double>(api.inner_bytes(state->core)), &bytes));
  NAPI_OK(napi_create_int32(env, api.max_threads(), &threads));
  NAPI_OK(napi_create_array_with_length(env, count, &lines));
  char buf[512];
  for (size_t i = 0; i < count && api.describe_plan(state->core, i, buf, sizeof buf) != 0; i++) {
    napi_value line;
    NAPI_OK(napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &line));
    NAPI_OK(napi_set_element(env, lines, static_cast<uint32_t>(i), line));
  }
  NAPI_OK(napi_set_named_property(env, out, "plans", plans));
  NAPI_OK(napi_set_named_property(env, out, "innerBytes", bytes));
  NAPI_OK(napi_set_named_property(env, out, "threads", threads));
  NAPI_OK(napi_set_named_property(env, out, "describe", lines));
  return out;
}

napi_value Clear(napi_env env, napi_callback_info) {
  State* state = GetState(env);
  if (state != nullptr) state->api->clear(state->core);
  return nullptr;
}

void FinalizeState(napi_env, void* data, void*) {
  State* state = static_cast<State*>(data);
  state->api->destroy(state->core);
  delete state;
}

}  // namespace

NAPI_MODULE_INIT() {
  // Runs once per environment (the main thread, each worker), so each gets its own engine, stream and
  // plan cache; the core library itself is loaded once per process.
  std::string error;
  const srgan_core_api* api = LoadCore(&error);
  if (api == nullptr) {
    napi_throw_error(env, "SRGAN_ERR_NATIVE", error.c_str());
    return nullptr;
  }
  char err[kErrLen] = {0};
  srgan_core* core = api->create(err, sizeof err);
  if (core == nullptr) {
    napi_throw_error(env, "SRGAN_ERR_NATIVE", (std::string("cannot create a oneDNN CPU engine: ") + err).c_str());
    return nullptr;
  }
  State* state = new State{api, core};
  if (napi_set_instance_data(env, state, FinalizeState, nullptr) != napi_ok) {
    FinalizeState(env, state, nullptr);
    napi_throw_error(env, "SRGAN_ERR_NATIVE", "srgan_dnnl: cannot attach instance data");
    return nullptr;
  }
  const napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2D, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"conv2dBackpropInput", nullptr, BackpropInput, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"conv2dBackpropFilter", nullptr, BackpropFilter, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"batchNormForward", nullptr, BatchNormForward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"batchNormBackward", nullptr, BatchNormBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"leakyRelu", nullptr, LeakyRelu, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"leakyReluGrad", nullptr, LeakyReluGrad, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"maxPoolGrad", nullptr, MaxPoolGrad, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"stridedCopy", nullptr, StridedCopy, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"configure", nullptr, Configure, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"clear", nullptr, Clear, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_value abi;
  if (napi_create_int32(env, kAbi, &abi) != napi_ok ||
      napi_set_named_property(env, exports, "abi", abi) != napi_ok ||
      napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) {
    return nullptr;
  }
  return exports;
}
