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

#define SRGAN_CORE_ABI 3

typedef struct srgan_core srgan_core;  // one per Node environment: engine, stream, plan cache, thread pool

/** Geometry words in the order of the parameter block (addon.cc): tfjs conventions, dilation 1 = dense. */
typedef struct {
  int32_t n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pad_top, pad_left, pad_bottom, pad_right;
} srgan_geometry;

/** Batch-norm geometry (train_ops.h): NHWC as [rows, c]; act 0 none, 1 LeakyReLU with alpha. */
typedef struct {
  int64_t rows, c;
  int32_t act;
  float alpha, eps;
} srgan_norm;

/** Max-pool geometry, NHWC, dilation 1: n, ih, iw, c, oh, ow, kh, kw, sh, sw, pad top, pad left. */
typedef struct {
  int32_t n, ih, iw, c, oh, ow, kh, kw, sh, sw, pad_top, pad_left;
} srgan_pool;

/** Adam's constants for one step, float32 as tfjs has them (train_ops.h AdamParams). */
typedef struct {
  float lr, beta1, beta2, eps, one_minus_acc_beta1, one_minus_acc_beta2, one_minus_beta1, one_minus_beta2;
} srgan_adam;

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

  // The small training ops (train_ops.h), on the core's thread pool with the calling thread's thread
  // count (set_threads). They cannot fail once the caller has checked the geometry and the buffers,
  // so they return nothing.
  void (*batch_norm_forward)(srgan_core* core, const srgan_norm* p, const float* x, const float* gamma,
                             const float* beta, float* y, float* mean, float* var);
  void (*batch_norm_backward)(srgan_core* core, const srgan_norm* p, const float* x, const float* dy,
                              const float* gamma, const float* beta, const float* mean, const float* var, float* dx,
                              float* dgamma, float* dbeta);
  void (*leaky_relu)(srgan_core* core, int64_t n, const float* x, float* y, float alpha);
  void (*leaky_relu_grad)(srgan_core* core, int64_t n, const float* x, const float* dy, float* dx, float alpha);
  void (*max_pool_grad)(srgan_core* core, const srgan_pool* g, const float* x, const float* dy, float* dx);
  void (*adam)(srgan_core* core, int64_t n, const srgan_adam* p, const float* var, const float* m, const float* v,
               const float* g, float* var_out, float* m_out, float* v_out);
  /** y[Σ i_k·out_strides_k] = x[Σ i_k·in_strides_k] over `dims`; 4-byte elements; rank <= 8. */
  void (*strided_copy)(srgan_core* core, int32_t rank, const int64_t* dims, const int64_t* in_strides,
                       const int64_t* out_strides, const uint32_t* x, uint32_t* y);
  /**
   * 0: convolutions in fp32; 1: in bf16 with fp32 outputs (conv_plans.h Precision). Refuses bf16 (nonzero,
   * with the reason in err) where oneDNN has no bf16 instructions to run it on: there its bf16
   * convolutions are reference code, many times slower than fp32.
   */
  int (*set_precision)(srgan_core* core, int32_t precision, char* err, size_t err_len);
} srgan_core_api;

/** The only exported symbol of srgan_dnnl_core.so. */
const srgan_core_api* srgan_core_get_api(void);
}

#endif  // SRGAN_CORE_API_H
