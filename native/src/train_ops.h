// The small training ops that surround the convolutions: batch norm (training mode, with an optional
// LeakyReLU fused in) forward and backward, LeakyReLU / ReLU and their gradient, the max-pool
// gradient, Adam's per-variable update and a strided copy (transposes, slices, concatenation,
// depth-to-space). Plain loops, run on the core's
// WorkPool with oneDNN's thread count; no oneDNN calls.
//
// Why ours and not oneDNN's primitives: each of these is one or two passes over memory, and what costs
// is the number of passes and of calls. Batch norm with a LeakyReLU slope (oneDNN 2.6 fuses only
// ReLU), its backward reading the activation mask from x (nothing extra saved), and Adam as one pass
// over four arrays have no oneDNN primitive; a loop is also simpler than a plan cache for them.
//
// Threads: each loop is cut into chunks fixed by the tensor's size alone and run on a WorkPool
// (work_pool.h says why not OpenMP); reductions are summed per chunk, in chunk order, so results do
// not depend on the thread count. Small tensors stay on the calling thread.
//
// Layout and numerics contract with the caller (src/models/backend/native/train-ops.ts):
//  - Every tensor is float32, densely packed; batch-norm tensors are NHWC seen as [rows, c]
//    (rows = N·H·W), per-channel vectors are [c].
//  - Batch statistics are accumulated in double (shifted by the first row, so large means cost no
//    precision), the variance is the biased one (mean of squares) that normalisation uses.
//  - Element-wise formulas follow tfjs' op order (Adam: tfjs-core's AdamOptimizer) in float32, so
//    results match the tfjs ops to rounding.
//  - Outputs never alias inputs. Nothing is retained after a call.

#ifndef SRGAN_TRAIN_OPS_H
#define SRGAN_TRAIN_OPS_H

#include <cstdint>

namespace srgan {

class WorkPool;

/** Where an op runs: the pool, and how many threads (the caller included) it may use. */
struct Exec {
  WorkPool* pool;
  int threads;
};

/** Activation fused after a batch norm: none, or LeakyReLU with `alpha` (0 = ReLU). */
enum class NormActivation : int32_t { kNone = 0, kLeakyRelu = 1 };

struct NormParams {
  int64_t rows;  // N·H·W
  int64_t c;
  NormActivation act;
  float alpha;
  float eps;
};

/**
 * Training-mode batch norm: mean[c], var[c] (biased) of x over its rows, then
 * y = act(x·scale + shift) with scale = gamma / sqrt(var + eps), shift = beta − mean·scale.
 */
void BatchNormForward(const Exec& ex, const NormParams& p, const float* x, const float* gamma, const float* beta, float* y,
                      float* mean, float* var);

/**
 * Gradient of BatchNormForward (through the batch statistics) for dy = dL/dy: dx, dgamma, dbeta.
 * The activation's mask comes from x (pre-activation x·scale + shift > 0), so y is not needed.
 */
void BatchNormBackward(const Exec& ex, const NormParams& p, const float* x, const float* dy, const float* gamma, const float* beta,
                       const float* mean, const float* var, float* dx, float* dgamma, float* dbeta);

/** y = x > 0 ? x : alpha·x (tfjs LeakyRelu); alpha 0 is ReLU, with +0 for x ≤ 0. */
void LeakyRelu(const Exec& ex, int64_t n, const float* x, float* y, float alpha);

/** dx = x > 0 ? dy : alpha·dy (the gradient of LeakyRelu; alpha 0 gives ReLU's). */
void LeakyReluGrad(const Exec& ex, int64_t n, const float* x, const float* dy, float* dx, float alpha);

/** Geometry of a 2-D max pool, NHWC, dilation 1, tfjs' pads (top, left; the rest is implied). */
struct PoolGeometry {
  int32_t n, ih, iw, c, oh, ow, kh, kw, sh, sw, pad_top, pad_left;
};

/**
 * dx of a max pool: each dy goes to the first maximum of its window in row-major window order
 * (tfjs' maxPoolPositions: strictly greater wins), summed where windows overlap; zero elsewhere.
 */
void MaxPoolGrad(const Exec& ex, const PoolGeometry& g, const float* x, const float* dy, float* dx);

/**
 * Adam's constants for one step as tfjs computes them (float32): one_minus_acc_beta* = 1 − beta^t,
 * one_minus_beta* = 1 − beta rounded from double (not a float subtraction).
 */
struct AdamParams {
  float lr, beta1, beta2, eps, one_minus_acc_beta1, one_minus_acc_beta2, one_minus_beta1, one_minus_beta2;
};

/** One Adam step of one variable, tfjs-core's formulas and order: writes var', m', v'. */
void AdamUpdate(const Exec& ex, int64_t n, const AdamParams& p, const float* var, const float* m, const float* v, const float* g,
                float* var_out, float* m_out, float* v_out);

/** Maximum rank of a strided copy (tfjs' own kernels stop at 6). */
constexpr int kMaxCopyRank = 8;

/**
 * y[Σ i_k·out_strides_k] = x[Σ i_k·in_strides_k] for every index i of `dims` (4-byte elements; strides
 * in elements, ≥ 0; the caller offsets x and y). A transpose, slice, split, one input of a concat
 * and depth-to-space are each one call. Axes of size 1 are dropped and axes that are contiguous in
 * both x and y merged first, so the innermost loop is as long as it can be (a memcpy when both
 * inner strides are 1).
 */
void StridedCopy(const Exec& ex, int rank, const int64_t* dims, const int64_t* in_strides, const int64_t* out_strides,
                 const uint32_t* x, uint32_t* y);

}  // namespace srgan

#endif  // SRGAN_TRAIN_OPS_H
