#include "conv_plans.h"

#include <cstring>
#include <sstream>

#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
#include <omp.h>
#endif

namespace srgan {

namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;

// Plans hold inner (reordered) buffers; bound both how many and how many bytes stay cached.
constexpr size_t kMaxPlans = 64;
constexpr size_t kMaxInnerBytes = size_t{512} << 20;

/** The threads a primitive created now would be sized for (OpenMP: this thread's setting). */
int32_t CurrentThreads() {
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
  return omp_get_max_threads();
#else
  return 0;
#endif
}

const char* OpName(Op op) {
  switch (op) {
    case Op::kForward: return "fwd";
    case Op::kBackwardData: return "bwd_data";
    case Op::kBackwardWeights: return "bwd_weights";
  }
  return "?";
}

std::string Label(Op op, const ConvGeometry& g, bool bias, ActivationLayout layout, Precision precision) {
  std::ostringstream s;
  s << OpName(op) << " x=" << g.n << 'x' << g.ih << 'x' << g.iw << 'x' << g.ic << " w=" << g.kh << 'x' << g.kw
    << 'x' << g.ic << 'x' << g.oc << " y=" << g.n << 'x' << g.oh << 'x' << g.ow << 'x' << g.oc << " s=" << g.sh
    << ',' << g.sw << " d=" << g.dh << ',' << g.dw << " pad=" << g.pad_top << ',' << g.pad_left << ','
    << g.pad_bottom << ',' << g.pad_right << (bias ? " +bias" : "")
    << (layout == ActivationLayout::kAny ? " act=any" : " act=nhwc")
    << (precision == Precision::kBf16 ? " bf16" : " f32") << " threads=" << CurrentThreads();
  return s.str();
}

// A convolution with at most this many channels on one side (one that reads or writes image values, as
// a network's first and last convolutions do) stays fp32 under bf16: it is a small share of a step's
// multiply-adds, and with it in fp32 a bf16 run stays closer to its fp32 twin, seed by seed
// (docs/native.md, "bf16 measured").
constexpr int32_t kThinChannels = 16;

/**
 * The precision `op` on `g` runs in when `asked` is the configured one. Besides thin convolutions, a 1×1
 * backward-data stays fp32: oneDNN 2.6.3's bf16 kernel for it (jit_bf16_1x1) returns wrong values (60–100%
 * off) for some sizes, e.g. 30, 60 or 90 pixels with an output-channel count that is not a multiple of
 * 16 (test/unit/native-kernels.test.ts has one).
 */
Precision EffectivePrecision(Op op, const ConvGeometry& g, Precision asked) {
  if (asked != Precision::kBf16) return asked;
  if (g.ic <= kThinChannels || g.oc <= kThinChannels) return Precision::kF32;
  if (op == Op::kBackwardData && g.kh == 1 && g.kw == 1) return Precision::kF32;
  return asked;
}

}  // namespace

bool ConvPlans::Key::operator==(const Key& o) const {
  return op == o.op && std::memcmp(&g, &o.g, sizeof g) == 0 && with_bias == o.with_bias && act == o.act &&
         std::memcmp(&alpha, &o.alpha, sizeof alpha) == 0 && layout == o.layout && precision == o.precision &&
         threads == o.threads;
}

size_t ConvPlans::KeyHash::operator()(const Key& k) const {
  // FNV-1a over the key's fields (ConvGeometry is all int32, so it has no padding bytes).
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* p, size_t n) {
    const unsigned char* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  };
  mix(&k.op, sizeof k.op);
  mix(&k.g, sizeof k.g);
  mix(&k.with_bias, sizeof k.with_bias);
  mix(&k.act, sizeof k.act);
  mix(&k.alpha, sizeof k.alpha);
  mix(&k.layout, sizeof k.layout);
  mix(&k.precision, sizeof k.precision);
  mix(&k.threads, sizeof k.threads);
  return static_cast<size_t>(h);
}

ConvPlans::ConvPlans() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

void ConvPlans::SetActivationLayout(ActivationLayout layout) { layout_ = layout; }

void ConvPlans::SetPrecision(Precision precision) { precision_ = precision; }

void ConvPlans::Clear() {
  plans_.clear();
  lru_.clear();
  inner_bytes_ = 0;
}

std::vector<std::string> ConvPlans::Describe() const {
  std::vector<std::string> out;
  for (const auto& entry : lru_) out.push_back(entry.second->label);
  return out;
}

ConvPlans::Arg ConvPlans::MakeArg(const memory::desc& user, const memory::desc& inner, bool is_input, Plan& plan) {
  Arg arg;
  arg.user = memory(user, engine_, DNNL_MEMORY_NONE);
  if (inner == user) {
    arg.inner = arg.user;
    return arg;
  }
  arg.inner = memory(inner, engine_);  // library-owned buffer, lives as long as the plan
  arg.reorder = is_input ? dnnl::reorder(arg.user, arg.inner) : dnnl::reorder(arg.inner, arg.user);
  arg.needs_reorder = true;
  plan.inner_bytes += inner.get_size();
  return arg;
}

std::unique_ptr<ConvPlans::Plan> ConvPlans::Build(const Key& key) {
  const ConvGeometry& g = key.g;
  const memory::dims src_dims{g.n, g.ic, g.ih, g.iw};
  const memory::dims wei_dims{g.oc, g.ic, g.kh, g.kw};
  const memory::dims dst_dims{g.n, g.oc, g.oh, g.ow};
  const memory::dims strides{g.sh, g.sw};
  const memory::dims dilates{g.dh - 1, g.dw - 1};  // oneDNN counts the skipped elements: 0 = dense
  const memory::dims pad_l{g.pad_top, g.pad_left};
  const memory::dims pad_r{g.pad_bottom, g.pad_right};

  const memory::desc src_user(src_dims, dt::f32, tag::nhwc);
  const memory::desc dst_user(dst_dims, dt::f32, tag::nhwc);
  const memory::desc wei_user(wei_dims, dt::f32, tag::hwio);
  const memory::desc bias_md({g.oc}, dt::f32, tag::x);
  const tag act_tag = key.layout == ActivationLayout::kAny ? tag::any : tag::nhwc;
  // In bf16, what a primitive reads is bf16 and what it writes is f32 (see Precision): src and weights
  // are read by the forward and backward-weights / backward-data, dst by neither of the backward ones
  // (there it is diff_dst, read), src by backward-data as diff_src (written).
  const dt in = key.precision == Precision::kBf16 ? dt::bf16 : dt::f32;
  const dt src_dt = key.op == Op::kBackwardData ? dt::f32 : in;
  const dt dst_dt = key.op == Op::kForward ? dt::f32 : in;
  const dt wei_dt = key.op == Op::kBackwardWeights ? dt::f32 : in;
  const memory::desc src_any(src_dims, src_dt, act_tag);
  const memory::desc dst_any(dst_dims, dst_dt, act_tag);
  const memory::desc wei_any(wei_dims, wei_dt, tag::any);
  const bool with_bias = key.with_bias != 0;

  dnnl::primitive_attr attr;
  if (key.op == Op::kForward && key.act != Activation::kNone) {
    dnnl::post_ops ops;
    switch (key.act) {
      case Activation::kRelu: ops.append_eltwise(1.f, algorithm::eltwise_relu, key.alpha, 0.f); break;
      case Activation::kRelu6: ops.append_eltwise(1.f, algorithm::eltwise_clip, 0.f, 6.f); break;
      case Activation::kElu: ops.append_eltwise(1.f, algorithm::eltwise_elu, 1.f, 0.f); break;
      case Activation::kSigmoid: ops.append_eltwise(1.f, algorithm::eltwise_logistic, 0.f, 0.f); break;
      case Activation::kNone: break;
    }
    attr.set_post_ops(ops);
  }

  // The forward descriptor is also the hint the backward primitives need (their layouts follow it); for
  // them it is the forward of the same precision, reading src and weights in `in`.
  const memory::desc hint_src(src_dims, in, act_tag);
  const memory::desc hint_wei(wei_dims, in, tag::any);
  const memory::desc hint_dst(dst_dims, key.op == Op::kForward ? dt::f32 : in, act_tag);
  const dnnl::convolution_forward::desc fwd_desc(prop_kind::forward_training, algorithm::convolution_direct,
                                                 key.op == Op::kForward ? src_any : hint_src,
                                                 key.op == Op::kForward ? wei_any : hint_wei,
                                                 with_bias ? bias_md : memory::desc(),
                                                 key.op == Op::kForward ? dst_any : hint_dst, strides, dilates, pad_l,
                                                 pad_r);
  const dnnl::convolution_forward::primitive_desc fwd_pd(fwd_desc, attr, engine_);

  auto plan = std::make_unique<Plan>();
  plan->label = Label(key.op, g, with_bias, key.layout, key.precision);
  Plan& p = *plan;
  switch (key.op) {
    case Op::kForward: {
      p.primitive = dnnl::convolution_forward(fwd_pd);
      p.a = MakeArg(src_user, fwd_pd.src_desc(), true, p);
      p.b = MakeArg(wei_user, fwd_pd.weights_desc(), true, p);
      p.c = MakeArg(dst_user, fwd_pd.dst_desc(), false, p);
      p.args = {{DNNL_ARG_SRC, p.a.inner}, {DNNL_ARG_WEIGHTS, p.b.inner}, {DNNL_ARG_DST, p.c.inner}};
      if (with_bias) {
        p.bias = memory(bias_md, engine_, DNNL_MEMORY_NONE);
        p.args.emplace(DNNL_ARG_BIAS, p.bias);
      }
      plan->label += std::string(" impl=") + fwd_pd.impl_info_str();
      break;
    }
    case Op::kBackwardData: {
      const dnnl::convolution_backward_data::desc desc(algorithm::convolution_direct, src_any, wei_any, dst_any,
                                                       strides, dilates, pad_l, pad_r);
      const dnnl::convolution_backward_data::primitive_desc pd(desc, engine_, fwd_pd);
      p.primitive = dnnl::convolution_backward_data(pd);
      p.a = MakeArg(dst_user, pd.diff_dst_desc(), true, p);
      p.b = MakeArg(wei_user, pd.weights_desc(), true, p);
      p.c = MakeArg(src_user, pd.diff_src_desc(), false, p);
      p.args = {{DNNL_ARG_DIFF_DST, p.a.inner}, {DNNL_ARG_WEIGHTS, p.b.inner}, {DNNL_ARG_DIFF_SRC, p.c.inner}};
      plan->label += std::string(" impl=") + pd.impl_info_str();
      break;
    }
    case Op::kBackwardWeights: {
      const dnnl::convolution_backward_weights::desc desc(algorithm::convolution_direct, src_any, wei_any,
                                                          with_bias ? bias_md : memory::desc(), dst_any, strides,
                                                          dilates, pad_l, pad_r);
      const dnnl::convolution_backward_weights::primitive_desc pd(desc, engine_, fwd_pd);
      p.primitive = dnnl::convolution_backward_weights(pd);
      p.a = MakeArg(src_user, pd.src_desc(), true, p);
      p.b = MakeArg(dst_user, pd.diff_dst_desc(), true, p);
      p.c = MakeArg(wei_user, pd.diff_weights_desc(), false, p);
      p.args = {{DNNL_ARG_SRC, p.a.inner}, {DNNL_ARG_DIFF_DST, p.b.inner}, {DNNL_ARG_DIFF_WEIGHTS, p.c.inner}};
      if (with_bias) {
        p.bias = memory(bias_md, engine_, DNNL_MEMORY_NONE);
        p.args.emplace(DNNL_ARG_DIFF_BIAS, p.bias);
      }
      plan->label += std::string(" impl=") + pd.impl_info_str();
      break;
    }
  }
  if (key.precision == Precision::kBf16 && plan->label.find(" impl=ref") != std::string::npos) {
    // oneDNN has only reference code for this shape in bf16, many times slower than its fp32 kernels:
    // this convolution stays in fp32 (its plan says why).
    Key f32 = key;
    f32.precision = Precision::kF32;
    std::unique_ptr<Plan> fallback = Build(f32);
    fallback->label += " (bf16 asked: oneDNN has only reference code for it)";
    return fallback;
  }
  return plan;
}

ConvPlans::Plan& ConvPlans::Get(const Key& key) {
  auto found = plans_.find(key);
  if (found != plans_.end()) {
    lru_.splice(lru_.begin(), lru_, found->second);
    return *found->second->second;
  }
  std::unique_ptr<Plan> plan = Build(key);  // may throw dnnl::error; the cache is unchanged then
  inner_bytes_ += plan->inner_bytes;
  lru_.emplace_front(key, std::move(plan));
  plans_.emplace(key, lru_.begin());
  // Evict least recently used plans, never the one just built.
  while (lru_.size() > 1 && (lru_.size() > kMaxPlans || inner_bytes_ > kMaxInnerBytes)) {
    inner_bytes_ -= lru_.back().second->inner_bytes;
    plans_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return *lru_.front().second;
}

void ConvPlans::Run(Plan& p, const void* a, const void* b, void* c, void* bias) {
  // The user memories are views of the caller's buffers for this call only: set every handle anew.
  p.a.user.set_data_handle(const_cast<void*>(a));
  p.b.user.set_data_handle(const_cast<void*>(b));
  p.c.user.set_data_handle(c);
  if (bias != nullptr) p.bias.set_data_handle(bias);
  if (p.a.needs_reorder) p.a.reorder.execute(stream_, p.a.user, p.a.inner);
  if (p.b.needs_reorder) p.b.reorder.execute(stream_, p.b.user, p.b.inner);
  p.primitive.execute(stream_, p.args);
  if (p.c.needs_reorder) p.c.reorder.execute(stream_, p.c.inner, p.c.user);
  stream_.wait();
}

void ConvPlans::Forward(const ConvGeometry& g, const float* x, const float* w, const float* b, float* y,
                        Activation act, float alpha) {
  if (act != Activation::kRelu) alpha = 0.f;  // only LeakyReLU reads it; keep keys canonical
  const Key key{Op::kForward, g, b != nullptr ? 1 : 0, act, alpha, layout_,
                EffectivePrecision(Op::kForward, g, precision_), CurrentThreads()};
  Run(Get(key), x, w, y, const_cast<float*>(b));
}

void ConvPlans::BackwardData(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  const Key key{Op::kBackwardData, g, 0, Activation::kNone, 0.f, layout_,
                EffectivePrecision(Op::kBackwardData, g, precision_), CurrentThreads()};
  Run(Get(key), dy, w, dx, nullptr);
}

void ConvPlans::BackwardWeights(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db) {
  const Key key{Op::kBackwardWeights, g, db != nullptr ? 1 : 0, Activation::kNone, 0.f, layout_,
                EffectivePrecision(Op::kBackwardWeights, g, precision_), CurrentThreads()};
  Run(Get(key), x, dy, dw, db);
}

}  // namespace srgan
