// oneDNN convolutions on caller-owned memory (the tfjs wasm heap): forward with optional bias and
// one eltwise post-op, backward-data, backward-weights with optional diff_bias.
//
// Layout contract with the caller: activations NHWC, weights HWIO ([KH, KW, Cin, Cout]), bias [Cout],
// all float32, densely packed. Those are the "user" memories; each primitive may choose other
// layouts (`any`), in which case the plan holds reorders and library-owned buffers for them.
//
// Why our own plan cache on top of oneDNN's primitive cache (which is on, at its default capacity):
// oneDNN's cache saves the JIT code generation, but creating the primitive descriptor still walks the
// implementation list, and we also need reorders and inner buffers. A plan keyed by the exact
// geometry makes a repeated call cost only the reorders and the primitive itself.
//
// Thread model: one ConvPlans per Node environment (main thread or worker), used only from that
// environment's JS thread. oneDNN parallelises inside each call with its OpenMP runtime.

#ifndef SRGAN_CONV_PLANS_H
#define SRGAN_CONV_PLANS_H

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core_api.h"
#include "dnnl.hpp"

namespace srgan {

/** Geometry of one forward convolution, in tfjs terms (dilation 1 = dense). Pads may be asymmetric. */
using ConvGeometry = srgan_geometry;

enum class Op : int32_t { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

/** The eltwise post-op of a forward convolution. kRelu with alpha > 0 is LeakyReLU. */
enum class Activation : int32_t { kNone = 0, kRelu = 1, kRelu6 = 2, kElu = 3, kSigmoid = 4 };

/** How activations are handed to the primitives: as NHWC directly, or reordered to oneDNN's choice. */
enum class ActivationLayout : int32_t { kNhwc = 0, kAny = 1 };

/**
 * What the convolutions compute in. kBf16: every input of a primitive (src, weights, diff_dst) is
 * converted to bfloat16 on its way in (the reorder the plan holds), the primitive accumulates in fp32,
 * and every output (dst, diff_src, diff_weights, bias, diff_bias) stays fp32. The caller's memories are
 * fp32 either way, so master weights, optimiser state and losses never leave fp32 (docs/native.md, "bf16").
 */
enum class Precision : int32_t { kF32 = 0, kBf16 = 1 };

class ConvPlans {
 public:
  ConvPlans();

  /** y = act(conv(x, w) + b); b may be null. */
  void Forward(const ConvGeometry& g, const float* x, const float* w, const float* b, float* y,
               Activation act, float alpha);
  /** dx = conv_backward_data(dy, w). */
  void BackwardData(const ConvGeometry& g, const float* dy, const float* w, float* dx);
  /** dw = conv_backward_weights(x, dy); db = sum of dy over N, H, W when db is not null. */
  void BackwardWeights(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db);

  void SetActivationLayout(ActivationLayout layout);
  void SetPrecision(Precision precision);
  void Clear();
  size_t plan_count() const { return plans_.size(); }
  size_t inner_bytes() const { return inner_bytes_; }
  /** One line per cached plan: the op, its shapes and oneDNN's implementation name. */
  std::vector<std::string> Describe() const;

 private:
  /** One tensor argument: the caller's memory, and the primitive's own when its layout differs. */
  struct Arg {
    dnnl::memory user;
    dnnl::memory inner;  // same object as `user` when no reorder is needed
    dnnl::reorder reorder;
    bool needs_reorder = false;
  };
  struct Plan {
    std::string label;
    dnnl::primitive primitive;
    Arg a, b, c;          // forward: src, weights, dst; bwd-data: diff_dst, weights, diff_src;
                          // bwd-weights: src, diff_dst, diff_weights
    dnnl::memory bias;    // bias or diff_bias, layout x; empty when unused
    std::unordered_map<int, dnnl::memory> args;
    size_t inner_bytes = 0;
  };
  struct Key {
    Op op;
    ConvGeometry g;
    int32_t with_bias;
    Activation act;
    float alpha;
    ActivationLayout layout;
    Precision precision;
    int32_t threads;  // oneDNN sizes its work split for the thread count at creation
    bool operator==(const Key& o) const;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  using Lru = std::list<std::pair<Key, std::unique_ptr<Plan>>>;

  Plan& Get(const Key& key);
  std::unique_ptr<Plan> Build(const Key& key);
  Arg MakeArg(const dnnl::memory::desc& user, const dnnl::memory::desc& inner, bool is_input, Plan& plan);
  void Run(Plan& plan, const void* a, const void* b, void* c, void* bias);

  dnnl::engine engine_;
  dnnl::stream stream_;
  ActivationLayout layout_ = ActivationLayout::kNhwc;
  Precision precision_ = Precision::kF32;
  Lru lru_;  // most recently used first
  std::unordered_map<Key, Lru::iterator, KeyHash> plans_;
  size_t inner_bytes_ = 0;
};

}  // namespace srgan

#endif  // SRGAN_CONV_PLANS_H
