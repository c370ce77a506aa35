#include "train_ops.h"

#include "work_pool.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

namespace srgan {

namespace {

// Below this many elements an op stays on the calling thread: waking a pool thread costs more than
// the pass itself.
constexpr int64_t kParallelMin = int64_t{1} << 15;
// Elements per chunk (at most kMaxChunks chunks): small enough that a late thread is not waited for
// long, large enough that claiming a chunk costs nothing.
constexpr int64_t kChunkWork = int64_t{1} << 14;
constexpr int64_t kMaxChunks = 64;
// Rows accumulated in float before they are added to the double sums (keeps float error bounded).
constexpr int64_t kBlockRows = 64;

/** How many chunks `units` (of `work` elements in all) are cut into: a function of the sizes only. */
int ChunksFor(int64_t units, int64_t work) {
  if (work < kParallelMin || units < 2) return 1;
  int64_t chunks = work / kChunkWork;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  if (chunks > units) chunks = units;
  return static_cast<int>(chunks);
}

/** Runs fn(begin, end, chunk) over `chunks` contiguous slices of [0, n) on the pool. */
template <typename Fn>
void ForChunks(const Exec& ex, int64_t n, int chunks, Fn fn) {
  if (chunks <= 1) {
    fn(int64_t{0}, n, 0);
    return;
  }
  const std::function<void(int)> run = [&](int chunk) { fn(n * chunk / chunks, n * (chunk + 1) / chunks, chunk); };
  ex.pool->Run(chunks, ex.threads, run);
}

/** Per-channel scale = gamma / sqrt(var + eps) and shift = beta − mean·scale, in tfjs' float order. */
void ScaleShift(const NormParams& p, const float* gamma, const float* beta, const float* mean, const float* var,
                float* invstd, float* scale, float* shift) {
  for (int64_t ch = 0; ch < p.c; ch++) {
    invstd[ch] = 1.f / std::sqrt(var[ch] + p.eps);
    scale[ch] = gamma[ch] * invstd[ch];
    shift[ch] = beta[ch] - mean[ch] * scale[ch];
  }
}

// The inner loops live in functions of their own, with restrict pointers. Inlined into the chunk
// lambdas (which capture the pointers by reference), GCC 12 either keeps a branch in them or guards
// the vector loop with alias checks it then fails, and the loop runs scalar: ~10× slower.

/** One row of the statistics: f1 += x − x0, f2 += (x − x0)² per channel. */
void StatsRow(int64_t c, const float* __restrict x, const float* __restrict x0, float* __restrict f1,
              float* __restrict f2) {
#pragma omp simd
  for (int64_t ch = 0; ch < c; ch++) {
    const float d = x[ch] - x0[ch];
    f1[ch] += d;
    f2[ch] += d * d;
  }
}

/** Rows [0, rows) of y = act(x·scale + shift); slope 1 is no activation (t·1 = t exactly). */
void NormRows(int64_t rows, int64_t c, const float* __restrict x, const float* __restrict scale,
              const float* __restrict shift, float slope, float* __restrict y) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * c;
    float* yr = y + r * c;
#pragma omp simd
    for (int64_t ch = 0; ch < c; ch++) {
      const float t = xr[ch] * scale[ch] + shift[ch];
      yr[ch] = t * (t > 0.f ? 1.f : slope);
    }
  }
}

/**
 * One row of the backward pass's sums: f1 += g, f2 += g·x̂ per channel, with g = dy·(pre > 0 ? 1 : slope)
 * (d·1 = d exactly) and x̂ = (x − mean)·invstd.
 */
void GradSumsRow(int64_t c, const float* __restrict x, const float* __restrict dy, const float* __restrict scale,
                 const float* __restrict shift, const float* __restrict mean, const float* __restrict invstd, float slope,
                 float* __restrict f1, float* __restrict f2) {
#pragma omp simd
  for (int64_t ch = 0; ch < c; ch++) {
    const float t = x[ch] * scale[ch] + shift[ch];
    const float g = dy[ch] * (t > 0.f ? 1.f : slope);
    f1[ch] += g;
    f2[ch] += g * ((x[ch] - mean[ch]) * invstd[ch]);
  }
}

/** Per-channel coefficients of the backward pass (see BatchNormBackward). */
struct GradCoeffs {
  const float* scale;
  const float* shift;
  const float* mean;
  const float* invstd;
  const float* mg;   // Σg / rows
  const float* mgx;  // Σg·x̂ / rows
};

/** Rows [0, rows) of dx = scale·(g − mean(g) − x̂·mean(g·x̂)). */
void NormGradRows(int64_t rows, int64_t c, const float* __restrict x, const float* __restrict dy, const GradCoeffs& k,
                  float slope, float* __restrict dx) {
  const float* __restrict scale = k.scale;
  const float* __restrict shift = k.shift;
  const float* __restrict mean = k.mean;
  const float* __restrict invstd = k.invstd;
  const float* __restrict mg = k.mg;
  const float* __restrict mgx = k.mgx;
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * c;
    const float* dyr = dy + r * c;
    float* dxr = dx + r * c;
#pragma omp simd
    for (int64_t ch = 0; ch < c; ch++) {
      const float t = xr[ch] * scale[ch] + shift[ch];
      const float g = dyr[ch] * (t > 0.f ? 1.f : slope);
      const float xh = (xr[ch] - mean[ch]) * invstd[ch];
      dxr[ch] = scale[ch] * (g - mg[ch] - xh * mgx[ch]);
    }
  }
}

void LeakyReluSpan(int64_t n, const float* __restrict x, float* __restrict y, float alpha) {
  if (alpha == 0.f) {  // ReLU: +0 for x ≤ 0 (x·0 would give −0)
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.f ? x[i] : 0.f;
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * (x[i] > 0.f ? 1.f : alpha);
}

void LeakyReluGradSpan(int64_t n, const float* __restrict x, const float* __restrict dy, float* __restrict dx,
                       float alpha) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (x[i] > 0.f ? 1.f : alpha);
}

void AdamSpan(int64_t n, const AdamParams& p, const float* __restrict var, const float* __restrict m,
              const float* __restrict v, const float* __restrict g, float* __restrict var_out, float* __restrict m_out,
              float* __restrict v_out) {
  // tfjs: m' = m·β1 + g·(1 − β1); v' = v·β2 + g²·(1 − β2); m̂ = m' / (1 − β1^t); v̂ = v' / (1 − β2^t);
  // var' = (m̂ / (√v̂ + ε))·(−lr) + var. The constants are float32 scalars there too.
  const float b1 = p.beta1, c1 = p.one_minus_beta1;
  const float b2 = p.beta2, c2 = p.one_minus_beta2;
  const float k1 = p.one_minus_acc_beta1, k2 = p.one_minus_acc_beta2;
  const float eps = p.eps, neg_lr = -p.lr;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    const float mi = m[i] * b1 + g[i] * c1;
    const float vi = v[i] * b2 + (g[i] * g[i]) * c2;
    m_out[i] = mi;
    v_out[i] = vi;
    var_out[i] = ((mi / k1) / (std::sqrt(vi / k2) + eps)) * neg_lr + var[i];
  }
}

/**
 * One window position of a max pool: where x beats the best so far (strictly), it becomes the best and
 * `at` its position. Written with an integer mask: a select between an int and a float compare keeps
 * GCC 12 from vectorizing it.
 */
void ArgMaxStep(int32_t c, const float* __restrict x, int32_t at, float* __restrict best, int32_t* __restrict where) {
  for (int32_t ch = 0; ch < c; ch++) {
    const float xv = x[ch];
    const float bv = best[ch];
    const int32_t mask = -static_cast<int32_t>(xv > bv);
    best[ch] = xv > bv ? xv : bv;
    where[ch] = (at & mask) | (where[ch] & ~mask);
  }
}

}  // namespace

void BatchNormForward(const Exec& ex, const NormParams& p, const float* x, const float* gamma, const float* beta, float* y,
                      float* mean, float* var) {
  const int64_t rows = p.rows;
  const int64_t c = p.c;
  const int chunks = ChunksFor(rows, rows * c);
  // Sums of (x − x[0]) and its square per chunk, in double; shifting by the first row keeps
  // E[d²] − E[d]² well conditioned when the mean is large against the spread.
  std::vector<double> acc(static_cast<size_t>(chunks) * 2 * c, 0.0);
  const float* shift0 = x;
  ForChunks(ex, rows, chunks, [&](int64_t begin, int64_t end, int chunk) {
    double* s1 = acc.data() + static_cast<size_t>(chunk) * 2 * c;
    double* s2 = s1 + c;
    std::vector<float> f(2 * c);
    float* f1 = f.data();
    float* f2 = f1 + c;
    for (int64_t r0 = begin; r0 < end; r0 += kBlockRows) {
      const int64_t r1 = r0 + kBlockRows < end ? r0 + kBlockRows : end;
      std::fill(f.begin(), f.end(), 0.f);
      for (int64_t r = r0; r < r1; r++) StatsRow(c, x + r * c, shift0, f1, f2);
      for (int64_t ch = 0; ch < c; ch++) {
        s1[ch] += f1[ch];
        s2[ch] += f2[ch];
      }
    }
  });
  for (int64_t ch = 0; ch < c; ch++) {
    double s1 = 0, s2 = 0;
    for (int chunk = 0; chunk < chunks; chunk++) {
      s1 += acc[static_cast<size_t>(chunk) * 2 * c + ch];
      s2 += acc[static_cast<size_t>(chunk) * 2 * c + c + ch];
    }
    const double m = s1 / static_cast<double>(rows);
    const double v = s2 / static_cast<double>(rows) - m * m;
    mean[ch] = static_cast<float>(shift0[ch] + m);
    var[ch] = static_cast<float>(v > 0 ? v : 0);
  }

  std::vector<float> coeffs(3 * c);
  float* invstd = coeffs.data();
  float* scale = invstd + c;
  float* shift = scale + c;
  ScaleShift(p, gamma, beta, mean, var, invstd, scale, shift);
  const float slope = p.act == NormActivation::kLeakyRelu ? p.alpha : 1.f;
  ForChunks(ex, rows, chunks, [&](int64_t begin, int64_t end, int) {
    NormRows(end - begin, c, x + begin * c, scale, shift, slope, y + begin * c);
  });
}

void BatchNormBackward(const Exec& ex, const NormParams& p, const float* x, const float* dy, const float* gamma, const float* beta,
                       const float* mean, const float* var, float* dx, float* dgamma, float* dbeta) {
  const int64_t rows = p.rows;
  const int64_t c = p.c;
  const int chunks = ChunksFor(rows, rows * c);
  std::vector<float> coeffs(3 * c);
  float* invstd = coeffs.data();
  float* scale = invstd + c;
  float* shift = scale + c;
  ScaleShift(p, gamma, beta, mean, var, invstd, scale, shift);
  const float slope = p.act == NormActivation::kLeakyRelu ? p.alpha : 1.f;

  // Pass 1: Σg and Σg·x̂ per channel, g = dy through the activation, x̂ = (x − mean)·invstd.
  std::vector<double> acc(static_cast<size_t>(chunks) * 2 * c, 0.0);
  ForChunks(ex, rows, chunks, [&](int64_t begin, int64_t end, int chunk) {
    double* sg = acc.data() + static_cast<size_t>(chunk) * 2 * c;
    double* sgx = sg + c;
    std::vector<float> f(2 * c);
    float* f1 = f.data();
    float* f2 = f1 + c;
    for (int64_t r0 = begin; r0 < end; r0 += kBlockRows) {
      const int64_t r1 = r0 + kBlockRows < end ? r0 + kBlockRows : end;
      std::fill(f.begin(), f.end(), 0.f);
      for (int64_t r = r0; r < r1; r++) {
        const float* xr = x + r * c;
        const float* dyr = dy + r * c;
        GradSumsRow(c, xr, dyr, scale, shift, mean, invstd, slope, f1, f2);
      }
      for (int64_t ch = 0; ch < c; ch++) {
        sg[ch] += f1[ch];
        sgx[ch] += f2[ch];
      }
    }
  });
  std::vector<float> means(2 * c);  // Σg / rows and Σg·x̂ / rows
  float* mg = means.data();
  float* mgx = mg + c;
  for (int64_t ch = 0; ch < c; ch++) {
    double sg = 0, sgx = 0;
    for (int chunk = 0; chunk < chunks; chunk++) {
      sg += acc[static_cast<size_t>(chunk) * 2 * c + ch];
      sgx += acc[static_cast<size_t>(chunk) * 2 * c + c + ch];
    }
    dbeta[ch] = static_cast<float>(sg);
    dgamma[ch] = static_cast<float>(sgx);
    mg[ch] = static_cast<float>(sg / static_cast<double>(rows));
    mgx[ch] = static_cast<float>(sgx / static_cast<double>(rows));
  }

  // Pass 2: dx = gamma·invstd · (g − mean(g) − x̂·mean(g·x̂)).
  const GradCoeffs k{scale, shift, mean, invstd, mg, mgx};
  ForChunks(ex, rows, chunks, [&](int64_t begin, int64_t end, int) {
    NormGradRows(end - begin, c, x + begin * c, dy + begin * c, k, slope, dx + begin * c);
  });
}

void LeakyRelu(const Exec& ex, int64_t n, const float* x, float* y, float alpha) {
  ForChunks(ex, n, ChunksFor(n, n), [&](int64_t begin, int64_t end, int) {
    LeakyReluSpan(end - begin, x + begin, y + begin, alpha);
  });
}

void LeakyReluGrad(const Exec& ex, int64_t n, const float* x, const float* dy, float* dx, float alpha) {
  ForChunks(ex, n, ChunksFor(n, n), [&](int64_t begin, int64_t end, int) {
    LeakyReluGradSpan(end - begin, x + begin, dy + begin, dx + begin, alpha);
  });
}

void MaxPoolGrad(const Exec& ex, const PoolGeometry& g, const float* x, const float* dy, float* dx) {
  const int64_t c = g.c;
  const int64_t in_image = int64_t{g.ih} * g.iw * c;
  const int64_t out_image = int64_t{g.oh} * g.ow * c;
  std::memset(dx, 0, static_cast<size_t>(g.n * in_image) * sizeof(float));
  // Windows that overlap vertically write the same dx rows from different output rows, so those
  // are split by image only; otherwise output rows are independent and split freely.
  const bool rows_independent = g.sh >= g.kh;
  const int64_t units = rows_independent ? int64_t{g.n} * g.oh : g.n;
  ForChunks(ex, units, ChunksFor(units, int64_t{g.n} * in_image), [&](int64_t begin, int64_t end, int) {
    std::vector<float> best(c);
    std::vector<int32_t> where(c);  // offsets inside one image: < 2^31 floats, the wasm heap is 4 GiB
    for (int64_t u = begin; u < end; u++) {
      const int64_t b = rows_independent ? u / g.oh : u;
      const int64_t r_begin = rows_independent ? u % g.oh : 0;
      const int64_t r_end = rows_independent ? r_begin + 1 : g.oh;
      const float* xb = x + b * in_image;
      float* dxb = dx + b * in_image;
      for (int64_t orow = r_begin; orow < r_end; orow++) {
        for (int64_t ocol = 0; ocol < g.ow; ocol++) {
          std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
          std::fill(where.begin(), where.end(), -1);
          const int64_t row0 = orow * g.sh - g.pad_top;
          const int64_t col0 = ocol * g.sw - g.pad_left;
          for (int64_t i = 0; i < g.kh; i++) {
            const int64_t row = row0 + i;
            if (row < 0 || row >= g.ih) continue;
            for (int64_t j = 0; j < g.kw; j++) {
              const int64_t col = col0 + j;
              if (col < 0 || col >= g.iw) continue;
              const int64_t at = (row * g.iw + col) * c;
              ArgMaxStep(g.c, xb + at, static_cast<int32_t>(at), best.data(), where.data());
            }
          }
          const float* dyp = dy + b * out_image + (orow * g.ow + ocol) * c;
          for (int64_t ch = 0; ch < c; ch++) {
            if (where[ch] >= 0) dxb[where[ch] + ch] += dyp[ch];
          }
        }
      }
    }
  });
}

void AdamUpdate(const Exec& ex, int64_t n, const AdamParams& p, const float* var, const float* m, const float* v,
                const float* g, float* var_out, float* m_out, float* v_out) {
  ForChunks(ex, n, ChunksFor(n, n), [&](int64_t begin, int64_t end, int) {
    AdamSpan(end - begin, p, var + begin, m + begin, v + begin, g + begin, var_out + begin, m_out + begin, v_out + begin);
  });
}

void StridedCopy(const Exec& ex, int rank, const int64_t* dims, const int64_t* in_strides, const int64_t* out_strides,
                 const uint32_t* x, uint32_t* y) {
  int64_t d[kMaxCopyRank];
  int64_t is[kMaxCopyRank];
  int64_t os[kMaxCopyRank];
  int r = 0;
  int64_t total = 1;
  for (int k = 0; k < rank; k++) {
    total *= dims[k];
    if (dims[k] == 1) continue;
    // Merge into the previous axis when stepping it is the same as running off the end of this one.
    if (r > 0 && is[r - 1] == in_strides[k] * dims[k] && os[r - 1] == out_strides[k] * dims[k]) {
      d[r - 1] *= dims[k];
      is[r - 1] = in_strides[k];
      os[r - 1] = out_strides[k];
      continue;
    }
    d[r] = dims[k];
    is[r] = in_strides[k];
    os[r] = out_strides[k];
    r++;
  }
  if (total == 0) return;
  if (r == 0) {  // a single element
    y[0] = x[0];
    return;
  }
  const int64_t inner = d[r - 1];
  const int64_t inner_is = is[r - 1];
  const int64_t inner_os = os[r - 1];
  const int64_t outer = total / inner;
  const bool contiguous = inner_is == 1 && inner_os == 1;
  ForChunks(ex, outer, ChunksFor(outer, total), [&](int64_t begin, int64_t end, int) {
    // The outer index as digits over d[0 .. r − 2], advanced like an odometer (no division per row).
    int64_t digit[kMaxCopyRank] = {0};
    int64_t src = 0;
    int64_t dst = 0;
    int64_t rest = begin;
    for (int k = r - 2; k >= 0; k--) {
      digit[k] = rest % d[k];
      rest /= d[k];
      src += digit[k] * is[k];
      dst += digit[k] * os[k];
    }
    for (int64_t o = begin; o < end; o++) {
      const uint32_t* s = x + src;
      uint32_t* t = y + dst;
      if (contiguous) {
        std::memcpy(t, s, static_cast<size_t>(inner) * sizeof(uint32_t));
      } else {
        for (int64_t i = 0; i < inner; i++) t[i * inner_os] = s[i * inner_is];
      }
      for (int k = r - 2; k >= 0; k--) {
        src += is[k];
        dst += os[k];
        if (++digit[k] < d[k]) break;
        src -= d[k] * is[k];
        dst -= d[k] * os[k];
        digit[k] = 0;
      }
    }
  });
}

}  // namespace srgan
