// The C ABI between the N-API front (srgan_dnnl.node, addon.cc) and the oneDNN core
// (srgan_dnnl_core.so, core.cc).
//
// Why two libraries: Debian's oneDNN runs on GNU OpenMP, and libgomp reads its environment
// (OMP_WAIT_POLICY, GOMP_SPINCOUNT) once, when it is loaded. Its default busy-waits at every barrier,
// which on a 2-core machine shared with other threads (our patch loaders, other processes) made a
// training step 5–10× slower whenever a core was taken (measured: ~150 ms instead of ~18 ms). The front
// sets OMP_WAIT_POLICY=PASSIVE (unless the user set it) and only then loads the core, which pulls in
// libdnnl and libgomp. Errors never cross this boundary as C++ exceptions: calls return 0 or write a
// message into `err`.

#ifndef SRGAN_CORE_API_H
#define SRGAN_CORE_API_H

#include <cstddef>
#include <cstdint>

extern "C" {

#define SRGAN_CORE_ABI 1

typedef struct srgan_core srgan_core;  // one per Node environment: engine, stream, plan cache

/** Geometry words in the order of the parameter block (addon.cc): tfjs conventions, dilation 1 = dense. */
typedef struct {
  int32_t n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pad_top, pad_left, pad_bottom, pad_right;
} srgan_geometry;

typedef struct {
  int32_t abi;
  /** Null on failure, with a message in err. */
  srgan_core* (*create)(char* err, size_t err_len);
  void (*destroy)(srgan_core* core);
  /** y = act(conv(x, w) + b), b may be null; act 0 none, 1 relu (leaky with alpha), 2 relu6, 3 elu, 4 sigmoid. */
  int (*forward)(srgan_core* core, const srgan_geometry* g, const float* x, const float* w, const float* b,
                 float* y, int32_t act, float alpha, char* err, size_t err_len);
  int (*backward_data)(srgan_core* core, const srgan_geometry* g, const float* dy, const float* w, float* dx,
                       char* err, size_t err_len);
  /** db may be null. */
  int (*backward_weights)(srgan_core* core, const srgan_geometry* g, const float* x, const float* dy, float* dw,
                          float* db, char* err, size_t err_len);
  /** 0: activations stay NHWC; 1: oneDNN picks their layout (reorders per call). */
  void (*set_activation_layout)(srgan_core* core, int32_t layout);
  /** OpenMP threads for oneDNN calls made from the calling thread. */
  void (*set_threads)(int32_t threads);
  int32_t (*max_threads)(void);
  size_t (*plan_count)(const srgan_core* core);
  size_t (*inner_bytes)(const srgan_core* core);
  /** Copies plan i's description into buf (NUL-terminated, truncated); returns 0 when i is out of range. */
  int (*describe_plan)(const srgan_core* core, size_t i, char* buf, size_t len);
  void (*clear)(srgan_core* core);
  /** "oneDNN 2.6.3 (OpenMP, passive wait, avx512_core_amx)" */
  void (*version)(char* buf, size_t len);
} srgan_core_api;

/** The only exported symbol of srgan_dnnl_core.so. */
const srgan_core_api* srgan_core_get_api(void);
}

#endif  // SRGAN_CORE_API_H
