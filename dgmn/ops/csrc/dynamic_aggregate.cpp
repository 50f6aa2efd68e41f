// Fused CPU kernel of dgmn.ops.dynamic_aggregate (forward and hand-written backward).
//
// Layout: every tensor is channels-last, i.e. (B, H, W, channels) contiguous, so the inner loop runs
// over the C channels of one pixel and vectorises. Math (see dynamic_aggregate.py):
//   out[b,y,x,c] = sum_{s,k} w[b,y,x,(s*K+k)*G+g(c)] * bilinear(x[b,:,:,c], py, px)
//   py = y + (ky-c0)*d_s + off[b,y,x,(s*K+k)*2],  px = x + (kx-c0)*d_s + off[b,y,x,(s*K+k)*2+1]
// No (B, C, S*K, H, W) tensor is ever built: one pixel's S*K nodes are read straight from x.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

// One sampling position: up to 4 valid corners with their bilinear coefficients and the
// derivative factors of those coefficients w.r.t. py (dy) and px (dx).
template <typename T>
struct Corners {
  int n = 0;
  int64_t idx[4];  // pixel index iy*W + ix within the image
  T coef[4];       // (1-|py-iy|)(1-|px-ix|)
  T dcy[4];        // d coef / d py
  T dcx[4];        // d coef / d px
};

template <typename T>
inline void corners(T py, T px, int64_t H, int64_t W, Corners<T>& c) {
  c.n = 0;
  const T fy = std::floor(py), fx = std::floor(px);
  const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
  const T ly = py - fy, lx = px - fx;
  const T wy[2] = {T(1) - ly, ly}, wx[2] = {T(1) - lx, lx};
  const T sy[2] = {T(-1), T(1)}, sx[2] = {T(-1), T(1)};
  for (int a = 0; a < 2; ++a) {
    const int64_t iy = y0 + a;
    if (iy < 0 || iy >= H) continue;
    for (int bb = 0; bb < 2; ++bb) {
      const int64_t ix = x0 + bb;
      if (ix < 0 || ix >= W) continue;
      c.idx[c.n] = iy * W + ix;
      c.coef[c.n] = wy[a] * wx[bb];
      c.dcy[c.n] = sy[a] * wx[bb];
      c.dcx[c.n] = wy[a] * sx[bb];
      ++c.n;
    }
  }
}

// Positions far outside the map (or NaN) have no valid corner; guard the float->int cast.
template <typename T>
inline bool finite_near(T py, T px, int64_t H, int64_t W) {
  return py > T(-2) && py < T(H + 1) && px > T(-2) && px < T(W + 1);
}

template <typename T>
void forward_impl(const T* x, const T* off, const T* wgt, T* out, const std::vector<int64_t>& dil,
                  int64_t B, int64_t H, int64_t W, int64_t C, int64_t ks, int64_t G) {
  const int64_t S = dil.size(), K = ks * ks, HW = H * W, Cg = C / G;
  const T c0 = T(ks - 1) / T(2);
  at::parallel_for(0, B * HW, 16, [&](int64_t begin, int64_t end) {
    Corners<T> cr;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / HW, y = (p % HW) / W, xx = p % W;
      const T* xb = x + b * HW * C;
      const T* op = off + p * S * K * 2;
      const T* wp = wgt + p * S * K * G;
      T* o = out + p * C;
      for (int64_t c = 0; c < C; ++c) o[c] = T(0);
      for (int64_t s = 0; s < S; ++s) {
        for (int64_t k = 0; k < K; ++k) {
          const int64_t sk = s * K + k;
          const T py = T(y) + (T(k / ks) - c0) * T(dil[s]) + op[sk * 2];
          const T px = T(xx) + (T(k % ks) - c0) * T(dil[s]) + op[sk * 2 + 1];
          if (!finite_near(py, px, H, W)) continue;
          corners(py, px, H, W, cr);
          for (int64_t g = 0; g < G; ++g) {
            const T wg = wp[sk * G + g];
            if (wg == T(0)) continue;  // e.g. one-hot weights of deform_conv2d: skip the dead node
            T* og = o + g * Cg;
            for (int n = 0; n < cr.n; ++n) {
              const T a = wg * cr.coef[n];
              const T* xv = xb + cr.idx[n] * C + g * Cg;
#pragma omp simd
              for (int64_t c = 0; c < Cg; ++c) og[c] += a * xv[c];
            }
          }
        }
      }
    }
  });
}

template <typename T>
void backward_impl(const T* x, const T* off, const T* wgt, const T* gout, T* gx, T* goff, T* gw,
                   const std::vector<int64_t>& dil, int64_t B, int64_t H, int64_t W, int64_t C, int64_t ks,
                   int64_t G, bool need_gx, bool need_gw) {
  const int64_t S = dil.size(), K = ks * ks, HW = H * W, Cg = C / G;
  const T c0 = T(ks - 1) / T(2);
  const int nthreads = at::get_num_threads();
  // Scatter into x's gradient races between pixels: each thread owns a private buffer (thread 0 writes gx).
  std::vector<std::vector<T>> bufs(nthreads > 1 && need_gx ? nthreads - 1 : 0);
  at::parallel_for(0, B * HW, 16, [&](int64_t begin, int64_t end) {
    const int tid = at::get_thread_num();
    T* gxt = nullptr;
    if (need_gx) {
      if (tid == 0) {
        gxt = gx;
      } else {
        auto& buf = bufs[tid - 1];
        if (buf.empty()) buf.assign(static_cast<size_t>(B * HW * C), T(0));
        gxt = buf.data();
      }
    }
    Corners<T> cr;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / HW, y = (p % HW) / W, xx = p % W;
      const T* xb = x + b * HW * C;
      T* gxb = need_gx ? gxt + b * HW * C : nullptr;
      const T* op = off + p * S * K * 2;
      const T* wp = wgt + p * S * K * G;
      const T* go = gout + p * C;
      T* gop = goff + p * S * K * 2;
      T* gwp = gw + p * S * K * G;
      for (int64_t s = 0; s < S; ++s) {
        for (int64_t k = 0; k < K; ++k) {
          const int64_t sk = s * K + k;
          const T py = T(y) + (T(k / ks) - c0) * T(dil[s]) + op[sk * 2];
          const T px = T(xx) + (T(k % ks) - c0) * T(dil[s]) + op[sk * 2 + 1];
          T gpy = T(0), gpx = T(0);
          if (!finite_near(py, px, H, W)) {
            for (int64_t g = 0; g < G; ++g) gwp[sk * G + g] = T(0);
            gop[sk * 2] = T(0);
            gop[sk * 2 + 1] = T(0);
            continue;
          }
          corners(py, px, H, W, cr);
          for (int64_t g = 0; g < G; ++g) {
            const T wg = wp[sk * G + g];
            if (wg == T(0) && !need_gw) {  // a zero weight moves neither x's nor the offset's gradient
              gwp[sk * G + g] = T(0);
              continue;
            }
            const T* gog = go + g * Cg;
            T sv = T(0), sy = T(0), sx = T(0);
            for (int n = 0; n < cr.n; ++n) {
              const T* xv = xb + cr.idx[n] * C + g * Cg;
              T dot = T(0);
#pragma omp simd reduction(+ : dot)
              for (int64_t c = 0; c < Cg; ++c) dot += gog[c] * xv[c];
              sv += cr.coef[n] * dot;
              sy += cr.dcy[n] * dot;
              sx += cr.dcx[n] * dot;
              if (need_gx) {
                T* gxv = gxb + cr.idx[n] * C + g * Cg;
                const T a = wg * cr.coef[n];
#pragma omp simd
                for (int64_t c = 0; c < Cg; ++c) gxv[c] += a * gog[c];
              }
            }
            gwp[sk * G + g] = sv;
            gpy += wg * sy;
            gpx += wg * sx;
          }
          gop[sk * 2] = gpy;
          gop[sk * 2 + 1] = gpx;
        }
      }
    }
  });
  if (!bufs.empty()) {
    const int64_t n = B * HW * C;
    at::parallel_for(0, n, 1 << 14, [&](int64_t begin, int64_t end) {
      for (auto& buf : bufs) {
        if (buf.empty()) continue;
        const T* src = buf.data();
        for (int64_t i = begin; i < end; ++i) gx[i] += src[i];
      }
    });
  }
}

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous (channels-last data as (B, H, W, channels))");
}

}  // namespace

// All tensors are (B, H, W, channels) contiguous.
torch::Tensor forward(torch::Tensor x, torch::Tensor off, torch::Tensor wgt, std::vector<int64_t> dil, int64_t ks) {
  check(x, "x");
  check(off, "offset");
  check(wgt, "weight");
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t G = wgt.size(3) / (static_cast<int64_t>(dil.size()) * ks * ks);
  auto out = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dynamic_aggregate_forward", [&] {
    forward_impl<scalar_t>(x.data_ptr<scalar_t>(), off.data_ptr<scalar_t>(), wgt.data_ptr<scalar_t>(),
                           out.data_ptr<scalar_t>(), dil, B, H, W, C, ks, G);
  });
  return out;
}

std::vector<torch::Tensor> backward(torch::Tensor gout, torch::Tensor x, torch::Tensor off, torch::Tensor wgt,
                                    std::vector<int64_t> dil, int64_t ks, bool need_gx, bool need_gw) {
  check(gout, "grad_out");
  check(x, "x");
  check(off, "offset");
  check(wgt, "weight");
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t G = wgt.size(3) / (static_cast<int64_t>(dil.size()) * ks * ks);
  auto gx = need_gx ? torch::zeros_like(x) : torch::empty({0}, x.options());
  auto goff = torch::empty_like(off);
  auto gw = torch::empty_like(wgt);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dynamic_aggregate_backward", [&] {
    backward_impl<scalar_t>(x.data_ptr<scalar_t>(), off.data_ptr<scalar_t>(), wgt.data_ptr<scalar_t>(),
                            gout.data_ptr<scalar_t>(), need_gx ? gx.data_ptr<scalar_t>() : nullptr,
                            goff.data_ptr<scalar_t>(), gw.data_ptr<scalar_t>(), dil, B, H, W, C, ks, G, need_gx, need_gw);
  });
  return {gx, goff, gw};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "dynamic_aggregate forward (channels-last)");
  m.def("backward", &backward, "dynamic_aggregate backward (channels-last)");
}
