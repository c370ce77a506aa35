// srgan_dnnl_core.so: the oneDNN side of the addon behind a C ABI (core_api.h explains the split).

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "conv_plans.h"
#include "core_api.h"
#include "train_ops.h"
#include "work_pool.h"

#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
#include <omp.h>
#endif

struct srgan_core {
  srgan::ConvPlans plans;
  srgan::WorkPool pool;  // train_ops' threads; joined when the environment goes away
};

namespace {

void Copy(const std::string& s, char* buf, size_t len) {
  if (len == 0) return;
  const size_t n = s.size() < len - 1 ? s.size() : len - 1;
  std::memcpy(buf, s.data(), n);
  buf[n] = '\0';
}

/** Runs `fn`, turning any exception into a message and a nonzero return. */
template <typename Fn>
int Guard(char* err, size_t err_len, Fn fn) {
  try {
    fn();
    return 0;
  } catch (const dnnl::error& e) {
    Copy(std::string("oneDNN: ") + e.what() + " (status " + std::to_string(static_cast<int>(e.status)) + ")", err,
         err_len);
  } catch (const std::bad_alloc&) {
    Copy("out of memory", err, err_len);
  } catch (const std::exception& e) {
    Copy(e.what(), err, err_len);
  }
  return 1;
}

const char* RuntimeName(unsigned runtime) {
  switch (runtime) {
    case DNNL_RUNTIME_OMP: return "OpenMP";
    case DNNL_RUNTIME_TBB: return "TBB";
    case DNNL_RUNTIME_SEQ: return "sequential";
    case DNNL_RUNTIME_THREADPOOL: return "threadpool";
    default: return "other runtime";
  }
}

const char* IsaName(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other isa";
  }
}

srgan_core* Create(char* err, size_t err_len) {
  srgan_core* core = nullptr;
  Guard(err, err_len, [&] { core = new srgan_core(); });
  return core;
}

void Destroy(srgan_core* core) { delete core; }

int Forward(srgan_core* core, const srgan_geometry* g, const float* x, const float* w, const float* b, float* y,
            int32_t act, float alpha, char* err, size_t err_len) {
  return Guard(err, err_len, [&] { core->plans.Forward(*g, x, w, b, y, static_cast<srgan::Activation>(act), alpha); });
}

int BackwardData(srgan_core* core, const srgan_geometry* g, const float* dy, const float* w, float* dx, char* err,
                 size_t err_len) {
  return Guard(err, err_len, [&] { core->plans.BackwardData(*g, dy, w, dx); });
}

int BackwardWeights(srgan_core* core, const srgan_geometry* g, const float* x, const float* dy, float* dw, float* db,
                    char* err, size_t err_len) {
  return Guard(err, err_len, [&] { core->plans.BackwardWeights(*g, x, dy, dw, db); });
}

void SetActivationLayout(srgan_core* core, int32_t layout) {
  core->plans.SetActivationLayout(static_cast<srgan::ActivationLayout>(layout));
}

int SetPrecision(srgan_core* core, int32_t precision, char* err, size_t err_len) {
  if (precision != 0 && precision != 1) {
    Copy("precision must be 0 (fp32) or 1 (bf16)", err, err_len);
    return 1;
  }
  if (precision == 1) {
    // oneDNN 2.6 runs bf16 convolutions natively on AVX512-BF16 (Cooper Lake, Zen 4) and AMX (Sapphire
    // Rapids); it emulates them on plain AVX512 (avx512_core: slower than fp32) and has only reference
    // code below that. ONEDNN_MAX_CPU_ISA lowers what it uses.
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    if (isa != dnnl::cpu_isa::avx512_core_bf16 && isa != dnnl::cpu_isa::avx512_core_amx) {
      Copy(std::string("bf16 needs a CPU with AVX512-BF16 or AMX; oneDNN runs on ") + IsaName(isa) +
               " here, where its bf16 convolutions are emulated, slower than fp32",
           err, err_len);
      return 1;
    }
  }
  core->plans.SetPrecision(static_cast<srgan::Precision>(precision));
  return 0;
}

void SetThreads(int32_t threads) {
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
  // OpenMP keeps this per calling thread: each Node worker sets its own.
  omp_set_num_threads(threads);
#else
  (void)threads;  // other runtimes use their own default (all cores)
#endif
}

int32_t MaxThreads() {
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
  return omp_get_max_threads();
#else
  return 0;
#endif
}

size_t PlanCount(const srgan_core* core) { return core->plans.plan_count(); }
size_t InnerBytes(const srgan_core* core) { return core->plans.inner_bytes(); }

int DescribePlan(const srgan_core* core, size_t i, char* buf, size_t len) {
  const std::vector<std::string> lines = core->plans.Describe();
  if (i >= lines.size()) return 0;
  Copy(lines[i], buf, len);
  return 1;
}

void Clear(srgan_core* core) { core->plans.Clear(); }

void Version(char* buf, size_t len) {
  const dnnl::version_t* v = dnnl::version();
  std::string s = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                  std::to_string(v->patch) + " (" + RuntimeName(v->cpu_runtime);
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  s += std::string(", OMP_WAIT_POLICY=") + (policy != nullptr ? policy : "unset");
#endif
  s += std::string(", ") + IsaName(dnnl::get_effective_cpu_isa()) + ")";
  Copy(s, buf, len);
}

srgan::NormParams Norm(const srgan_norm* p) {
  return {p->rows, p->c, static_cast<srgan::NormActivation>(p->act), p->alpha, p->eps};
}

/** The core's pool with the calling thread's oneDNN thread count. */
srgan::Exec ExecOf(srgan_core* core) {
  const int32_t threads = MaxThreads();
  return {&core->pool, threads > 0 ? threads : 1};
}

void BatchNormForward(srgan_core* core, const srgan_norm* p, const float* x, const float* gamma, const float* beta,
                      float* y, float* mean, float* var) {
  srgan::BatchNormForward(ExecOf(core), Norm(p), x, gamma, beta, y, mean, var);
}

void BatchNormBackward(srgan_core* core, const srgan_norm* p, const float* x, const float* dy, const float* gamma,
                       const float* beta, const float* mean, const float* var, float* dx, float* dgamma, float* dbeta) {
  srgan::BatchNormBackward(ExecOf(core), Norm(p), x, dy, gamma, beta, mean, var, dx, dgamma, dbeta);
}

void LeakyRelu(srgan_core* core, int64_t n, const float* x, float* y, float alpha) {
  srgan::LeakyRelu(ExecOf(core), n, x, y, alpha);
}

void LeakyReluGrad(srgan_core* core, int64_t n, const float* x, const float* dy, float* dx, float alpha) {
  srgan::LeakyReluGrad(ExecOf(core), n, x, dy, dx, alpha);
}

void MaxPoolGrad(srgan_core* core, const srgan_pool* g, const float* x, const float* dy, float* dx) {
  const srgan::PoolGeometry geometry{g->n,  g->ih, g->iw, g->c,  g->oh,      g->ow,
                                     g->kh, g->kw, g->sh, g->sw, g->pad_top, g->pad_left};
  srgan::MaxPoolGrad(ExecOf(core), geometry, x, dy, dx);
}

void Adam(srgan_core* core, int64_t n, const srgan_adam* p, const float* var, const float* m, const float* v,
          const float* g, float* var_out, float* m_out, float* v_out) {
  const srgan::AdamParams params{p->lr,   p->beta1, p->beta2, p->eps, p->one_minus_acc_beta1, p->one_minus_acc_beta2,
                                 p->one_minus_beta1, p->one_minus_beta2};
  srgan::AdamUpdate(ExecOf(core), n, params, var, m, v, g, var_out, m_out, v_out);
}

void StridedCopy(srgan_core* core, int32_t rank, const int64_t* dims, const int64_t* in_strides,
                 const int64_t* out_strides, const uint32_t* x, uint32_t* y) {
  srgan::StridedCopy(ExecOf(core), rank, dims, in_strides, out_strides, x, y);
}

const srgan_core_api kApi = {
    SRGAN_CORE_ABI, Create,    Destroy,    Forward,    BackwardData, BackwardWeights, SetActivationLayout, SetThreads,
    MaxThreads,     PlanCount, InnerBytes, DescribePlan, Clear,      Version,
    BatchNormForward, BatchNormBackward, LeakyRelu, LeakyReluGrad, MaxPoolGrad, Adam, StridedCopy, SetPrecision,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const srgan_core_api* srgan_core_get_api(void) { return &kApi; }
