// Fused CPU kernel of dgmn.ops.dynamic_aggregate (forward and hand-written backward).
//
// Layout: x and its gradient are channels-last, (B, H, W, C) contiguous, so the inner loop runs over
// the channels of one pixel and vectorises; offset and weight are read in place, NCHW or channels-last. Math (see dynamic_aggregate.py):
//   out[b,y,x,c] = sum_{s,k} w[b,y,x,(s*K+k)*G+g(c)] * bilinear(x[b,:,:,c], py, px)
//   py = y + (ky-c0)*d_s + off[b,y,x,(s*K+k)*2],  px = x + (kx-c0)*d_s + off[b,y,x,(s*K+k)*2+1]
// No (B, C, S*K, H, W) tensor is ever built: one pixel's S*K nodes are read straight from x.
//
// Every node always has 4 corners: a corner outside the map reads a row of zeros (forward) and
// scatters into a throw-away row (backward), so the channel loops have no branches.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

// The 4 corners of one sampling position: row pointers, bilinear coefficients and their
// derivatives w.r.t. py (dcy) and px (dcx). Invalid corners point at `zero` / `sink`.
template <typename T>
struct Node {
  const T* src[4];
  T* dst[4];
  T coef[4];
  T dcy[4];
  T dcx[4];
};

// Returns false when no corner is inside the map (then the node contributes nothing).
template <typename T>
inline bool make_node(T py, T px, int64_t H, int64_t W, int64_t C, const T* xb, T* gxb, const T* zero, T* sink,
                      Node<T>& n) {
  // Far outside (or NaN): no valid corner; also guards the float->int cast.
  if (!(py > T(-1) && py < T(H) && px > T(-1) && px < T(W))) return false;
  const T fy = std::floor(py), fx = std::floor(px);
  const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
  const T ly = py - fy, lx = px - fx;
  const T wy[2] = {T(1) - ly, ly}, wx[2] = {T(1) - lx, lx};
  const T sg[2] = {T(-1), T(1)};
  int i = 0;
  for (int a = 0; a < 2; ++a) {
    const int64_t iy = y0 + a;
    for (int bb = 0; bb < 2; ++bb, ++i) {
      const int64_t ix = x0 + bb;
      const bool ok = iy >= 0 && iy < H && ix >= 0 && ix < W;
      n.src[i] = ok ? xb + (iy * W + ix) * C : zero;
      n.dst[i] = ok && gxb ? gxb + (iy * W + ix) * C : sink;
      n.coef[i] = wy[a] * wx[bb];
      n.dcy[i] = sg[a] * wx[bb];
      n.dcx[i] = wy[a] * sg[bb];
    }
  }
  return true;
}

// A (B, channels, H, W) tensor whose H and W flatten to one pixel index: element (b, ch, pixel) lives at
// ptr + b*sb + ch*sc + pixel*sp. Covers both NCHW (sc = H*W, sp = 1) and channels-last (sc = 1, sp = channels).
template <typename T>
struct Planes {
  T* ptr;
  int64_t sb, sc, sp;
  T* at(int64_t b, int64_t pixel) const { return ptr + b * sb + pixel * sp; }
};

template <typename T>
Planes<T> planes(const torch::Tensor& t) {
  return {t.data_ptr<std::remove_const_t<T>>(), t.stride(0), t.stride(1), t.stride(3)};
}

// py, px of node (s, k) of pixel (y, x).
template <typename T>
inline void position(int64_t y, int64_t x, int64_t s, int64_t k, int64_t ks, T c0, const std::vector<int64_t>& dil,
                     const T* op, int64_t osc, int64_t sk, T& py, T& px) {
  py = T(y) + (T(k / ks) - c0) * T(dil[s]) + op[(sk * 2) * osc];
  px = T(x) + (T(k % ks) - c0) * T(dil[s]) + op[(sk * 2 + 1) * osc];
}

// One pixel's output, BLK channels at a time (BLK divides C/G, so a block has one weight per node):
// o[c] = sum_i w_i[g(c)] * sum_corners coef * x[corner, c], with the block's accumulators in registers.
template <typename T, int64_t BLK>
inline void node_blocks(const Node<T>* nodes, const int64_t* sks, int64_t nn, const T* wp, int64_t wsc, int64_t G,
                        int64_t C, int64_t Cg, T* o) {
  for (int64_t c1 = 0; c1 < C; c1 += BLK) {
    const int64_t g = c1 / Cg;
    T acc[BLK] = {};
    for (int64_t i = 0; i < nn; ++i) {
      const T wg = wp[(sks[i] * G + g) * wsc];
      if (wg == T(0)) continue;  // e.g. the one-hot weights of deform_conv2d: skip dead nodes
      const Node<T>& n = nodes[i];
      const T a0 = wg * n.coef[0], a1 = wg * n.coef[1], a2 = wg * n.coef[2], a3 = wg * n.coef[3];
      const T *__restrict__ s0 = n.src[0] + c1, *__restrict__ s1 = n.src[1] + c1;
      const T *__restrict__ s2 = n.src[2] + c1, *__restrict__ s3 = n.src[3] + c1;
#pragma omp simd
      for (int64_t c = 0; c < BLK; ++c) acc[c] += a0 * s0[c] + a1 * s1[c] + a2 * s2[c] + a3 * s3[c];
    }
    for (int64_t c = 0; c < BLK; ++c) o[c1 + c] = acc[c];
  }
}

template <typename T>
void forward_impl(const T* x, Planes<const T> off, Planes<const T> wgt, T* out, const std::vector<int64_t>& dil,
                  int64_t B, int64_t H, int64_t W, int64_t C, int64_t ks, int64_t G) {
  const int64_t S = dil.size(), K = ks * ks, HW = H * W, Cg = C / G;
  const T c0 = T(ks - 1) / T(2);
  const std::vector<T> zero(C, T(0));
  at::parallel_for(0, B * HW, 16, [&](int64_t begin, int64_t end) {
    std::vector<Node<T>> nodes(S * K);
    std::vector<int64_t> sks(S * K);
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / HW, y = (p % HW) / W, xx = p % W;
      const T* xb = x + b * HW * C;
      const T* op = off.at(b, p % HW);
      const T* wp = wgt.at(b, p % HW);
      T* o = out + p * C;
      int64_t nn = 0;  // this pixel's nodes with at least one corner inside the map
      for (int64_t s = 0; s < S; ++s) {
        for (int64_t k = 0; k < K; ++k) {
          const int64_t sk = s * K + k;
          T py, px;
          position(y, xx, s, k, ks, c0, dil, op, off.sc, sk, py, px);
          if (make_node<T>(py, px, H, W, C, xb, nullptr, zero.data(), nullptr, nodes[nn])) sks[nn++] = sk;
        }
      }
      // Blocks of BLK channels lie in one group: accumulate all nodes in registers, store once.
      if (Cg % 64 == 0) {
        node_blocks<T, 64>(nodes.data(), sks.data(), nn, wp, wgt.sc, G, C, Cg, o);
        continue;
      }
      if (Cg % 32 == 0) {
        node_blocks<T, 32>(nodes.data(), sks.data(), nn, wp, wgt.sc, G, C, Cg, o);
        continue;
      }
      if (Cg % 16 == 0) {
        node_blocks<T, 16>(nodes.data(), sks.data(), nn, wp, wgt.sc, G, C, Cg, o);
        continue;
      }
      for (int64_t c = 0; c < C; ++c) o[c] = T(0);
      for (int64_t i = 0; i < nn; ++i) {
        const Node<T>& n = nodes[i];
        for (int64_t g = 0; g < G; ++g) {
          const T wg = wp[(sks[i] * G + g) * wgt.sc];
          if (wg == T(0)) continue;
          const T a0 = wg * n.coef[0], a1 = wg * n.coef[1], a2 = wg * n.coef[2], a3 = wg * n.coef[3];
          const int64_t c1 = g * Cg;
          const T *__restrict__ s0 = n.src[0] + c1, *__restrict__ s1 = n.src[1] + c1;
          const T *__restrict__ s2 = n.src[2] + c1, *__restrict__ s3 = n.src[3] + c1;
          T* __restrict__ og = o + c1;
#pragma omp simd
          for (int64_t c = 0; c < Cg; ++c) og[c] += a0 * s0[c] + a1 * s1[c] + a2 * s2[c] + a3 * s3[c];
        }
      }
    }
  });
}

// Backward of one node, BLK channels at a time (BLK divides C/G): one fused pass per block computes
// grad_weight's per-group dot products, the offset gradient's per-lane partial sums and the scatter into
// x's gradient, with only G + 2 horizontal sums per node. gwp must be zeroed by the caller.
template <typename T, int64_t BLK, bool NEED_GX>
inline void node_backward_blocks(const Node<T>& n, const T* wpn, int64_t wsc, int64_t C, int64_t Cg, const T* go,
                                 bool need_gw, T* gwpn, int64_t gwsc, T& gpy, T& gpx) {
  T ay[BLK] = {}, ax[BLK] = {};
  for (int64_t c1 = 0; c1 < C; c1 += BLK) {
    const int64_t g = c1 / Cg;
    const T wg = wpn[g * wsc];
    if (wg == T(0) && !need_gw) continue;  // moves neither x's nor the offset's gradient
    const T *__restrict__ s0 = n.src[0] + c1, *__restrict__ s1 = n.src[1] + c1;
    const T *__restrict__ s2 = n.src[2] + c1, *__restrict__ s3 = n.src[3] + c1;
    const T* __restrict__ gb = go + c1;
    T *t0 = n.dst[0] + c1, *t1 = n.dst[1] + c1, *t2 = n.dst[2] + c1, *t3 = n.dst[3] + c1;
    const T a0 = wg * n.coef[0], a1 = wg * n.coef[1], a2 = wg * n.coef[2], a3 = wg * n.coef[3];
    T av[BLK];
#pragma omp simd
    for (int64_t c = 0; c < BLK; ++c) {
      const T gv = gb[c];
      const T v0 = s0[c], v1 = s1[c], v2 = s2[c], v3 = s3[c];
      av[c] = gv * (n.coef[0] * v0 + n.coef[1] * v1 + n.coef[2] * v2 + n.coef[3] * v3);
      const T wgv = wg * gv;
      ay[c] += wgv * (n.dcy[0] * v0 + n.dcy[1] * v1 + n.dcy[2] * v2 + n.dcy[3] * v3);
      ax[c] += wgv * (n.dcx[0] * v0 + n.dcx[1] * v1 + n.dcx[2] * v2 + n.dcx[3] * v3);
      if (NEED_GX) {
        t0[c] += a0 * gv;
        t1[c] += a1 * gv;
        t2[c] += a2 * gv;
        t3[c] += a3 * gv;
      }
    }
    T sv = T(0);
    for (int64_t c = 0; c < BLK; ++c) sv += av[c];
    gwpn[g * gwsc] += sv;
  }
  T sy = T(0), sx = T(0);
  for (int64_t c = 0; c < BLK; ++c) {
    sy += ay[c];
    sx += ax[c];
  }
  gpy = sy;
  gpx = sx;
}

template <typename T, int64_t BLK>
inline void node_backward(const Node<T>& n, const T* wpn, int64_t wsc, int64_t C, int64_t Cg, const T* go, bool need_gx,
                          bool need_gw, T* gwpn, int64_t gwsc, T& gpy, T& gpx) {
  if (need_gx) {
    node_backward_blocks<T, BLK, true>(n, wpn, wsc, C, Cg, go, need_gw, gwpn, gwsc, gpy, gpx);
  } else {
    node_backward_blocks<T, BLK, false>(n, wpn, wsc, C, Cg, go, need_gw, gwpn, gwsc, gpy, gpx);
  }
}

// Scattering into a gradient races between pixels: thread 0 writes `dst`, each other thread its own buffer in
// `scratch` (nbuf x numel, allocated by the caller); reduce() adds the buffers that were used into `dst`.
template <typename T>
struct ScatterBuffers {
  T* dst;
  T* scratch;
  int64_t nbuf, numel;
  std::vector<char> used;
  ScatterBuffers(T* dst, T* scratch, int64_t nbuf, int64_t numel)
      : dst(dst), scratch(scratch), nbuf(nbuf), numel(numel), used(nbuf, 0) {}
  T* claim(int tid, const char* what) {
    TORCH_CHECK(tid <= nbuf, what, ": more threads than scratch buffers");
    if (tid == 0) return dst;
    used[tid - 1] = 1;
    return scratch + (tid - 1) * numel;
  }
  void reduce() {
    if (nbuf == 0) return;
    at::parallel_for(0, numel, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t t = 0; t < nbuf; ++t) {
        if (!used[t]) continue;
        const T* src = scratch + t * numel;
        for (int64_t i = begin; i < end; ++i) dst[i] += src[i];
      }
    });
  }
};

template <typename T>
void backward_impl(const T* x, Planes<const T> off, Planes<const T> wgt, const T* gout, T* gx, T* scratch, int64_t nbuf,
                   Planes<T> goff, Planes<T> gw, const std::vector<int64_t>& dil, int64_t B, int64_t H, int64_t W, int64_t C, int64_t ks,
                   int64_t G, bool need_gx, bool need_gw) {
  const int64_t S = dil.size(), K = ks * ks, HW = H * W, Cg = C / G;
  const T c0 = T(ks - 1) / T(2);
  const std::vector<T> zero(C, T(0));
  ScatterBuffers<T> bufs(gx, scratch, nbuf, B * HW * C);  // x's gradient: one buffer per thread
  at::parallel_for(0, B * HW, 16, [&](int64_t begin, int64_t end) {
    T* gxt = need_gx ? bufs.claim(at::get_thread_num(), "dynamic_aggregate backward") : nullptr;
    std::vector<T> sink(C, T(0));  // where corners outside the map scatter to
    Node<T> n;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / HW, y = (p % HW) / W, xx = p % W;
      const T* xb = x + b * HW * C;
      T* gxb = need_gx ? gxt + b * HW * C : nullptr;
      const T* op = off.at(b, p % HW);
      const T* wp = wgt.at(b, p % HW);
      const T* go = gout + p * C;
      T* gop = goff.at(b, p % HW);
      T* gwp = gw.at(b, p % HW);
      for (int64_t s = 0; s < S; ++s) {
        for (int64_t k = 0; k < K; ++k) {
          const int64_t sk = s * K + k;
          T py, px;
          position(y, xx, s, k, ks, c0, dil, op, off.sc, sk, py, px);
          gop[(sk * 2) * goff.sc] = gop[(sk * 2 + 1) * goff.sc] = T(0);
          for (int64_t g = 0; g < G; ++g) gwp[(sk * G + g) * gw.sc] = T(0);
          if (!make_node<T>(py, px, H, W, C, xb, gxb, zero.data(), sink.data(), n)) continue;
          T gpy = T(0), gpx = T(0);
          if (Cg % 16 == 0) {
            const T* wpn = wp + sk * G * wgt.sc;
            T* gwpn = gwp + sk * G * gw.sc;
            if (Cg % 64 == 0) {
              node_backward<T, 64>(n, wpn, wgt.sc, C, Cg, go, need_gx, need_gw, gwpn, gw.sc, gpy, gpx);
            } else if (Cg % 32 == 0) {
              node_backward<T, 32>(n, wpn, wgt.sc, C, Cg, go, need_gx, need_gw, gwpn, gw.sc, gpy, gpx);
            } else {
              node_backward<T, 16>(n, wpn, wgt.sc, C, Cg, go, need_gx, need_gw, gwpn, gw.sc, gpy, gpx);
            }
            gop[(sk * 2) * goff.sc] = gpy;
            gop[(sk * 2 + 1) * goff.sc] = gpx;
            continue;
          }
          for (int64_t g = 0; g < G; ++g) {
            const T wg = wp[(sk * G + g) * wgt.sc];
            if (wg == T(0) && !need_gw) continue;  // moves neither x's nor the offset's gradient
            const int64_t c1 = g * Cg;
            const T *__restrict__ s0 = n.src[0] + c1, *__restrict__ s1 = n.src[1] + c1;
            const T *__restrict__ s2 = n.src[2] + c1, *__restrict__ s3 = n.src[3] + c1;
            const T* __restrict__ gog = go + c1;
            // d_i = <grad_out, corner i> over the group's channels
            T d0 = T(0), d1 = T(0), d2 = T(0), d3 = T(0);
#pragma omp simd reduction(+ : d0, d1, d2, d3)
            for (int64_t c = 0; c < Cg; ++c) {
              d0 += gog[c] * s0[c];
              d1 += gog[c] * s1[c];
              d2 += gog[c] * s2[c];
              d3 += gog[c] * s3[c];
            }
            gwp[(sk * G + g) * gw.sc] = n.coef[0] * d0 + n.coef[1] * d1 + n.coef[2] * d2 + n.coef[3] * d3;
            gpy += wg * (n.dcy[0] * d0 + n.dcy[1] * d1 + n.dcy[2] * d2 + n.dcy[3] * d3);
            gpx += wg * (n.dcx[0] * d0 + n.dcx[1] * d1 + n.dcx[2] * d2 + n.dcx[3] * d3);
            if (need_gx && wg != T(0)) {
              const T a0 = wg * n.coef[0], a1 = wg * n.coef[1], a2 = wg * n.coef[2], a3 = wg * n.coef[3];
              // Valid corners are distinct rows; only invalid ones share the throw-away sink row.
              T *t0 = n.dst[0] + c1, *t1 = n.dst[1] + c1, *t2 = n.dst[2] + c1, *t3 = n.dst[3] + c1;
#pragma omp simd
              for (int64_t c = 0; c < Cg; ++c) {
                const T gv = gog[c];
                t0[c] += a0 * gv;
                t1[c] += a1 * gv;
                t2[c] += a2 * gv;
                t3[c] += a3 * gv;
              }
            }
          }
          gop[(sk * 2) * goff.sc] = gpy;
          gop[(sk * 2 + 1) * goff.sc] = gpx;
        }
      }
    }
  });
  if (need_gx) bufs.reduce();
}

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous (channels-last data as (B, H, W, channels))");
}

void check_planes(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.dim() == 4, name, " must be a 4-D CPU tensor");
  TORCH_CHECK(t.stride(2) == t.size(3) * t.stride(3) || t.size(2) == 1, name,
              " must have H and W flattenable to one pixel index (NCHW or channels-last)");
}

// A (B, C, H, W) tensor in channels-last memory format for the (B, H, W, C) contiguous x: its memory is laid out
// as x's, so the kernels write it as (B, H, W, C); returned to Python it is a plain tensor, not a permuted view.
torch::Tensor nchw_channels_last(const torch::Tensor& x, bool zero) {
  const auto opts = x.options().memory_format(at::MemoryFormat::ChannelsLast);
  const std::vector<int64_t> size{x.size(0), x.size(3), x.size(1), x.size(2)};
  auto t = torch::empty(size, opts);  // (torch::zeros would drop the memory format)
  return zero ? t.zero_() : t;
}

// ---- deformable-convolution taps ------------------------------------------------------------------------
// z: (B, H, W, K*O) channels [k][o]; out[b,y,x,o] = sum_k bilinear(z[b,:,:,k*O+o], p_k), p_k node k of pixel
// (y, x) at one dilation. It is dynamic_aggregate with one-hot weights (node k <-> group k) summed over the
// K groups, without writing the K*O per-tap channels that the sum would read back.
template <typename T>
void taps_forward_impl(const T* z, Planes<const T> off, T* out, const std::vector<int64_t>& dil, int64_t B, int64_t H,
                       int64_t W, int64_t ks, int64_t O) {
  const int64_t K = ks * ks, HW = H * W, C = K * O;
  const T c0 = T(ks - 1) / T(2);
  const std::vector<T> zero(C, T(0));
  at::parallel_for(0, B * HW, 16, [&](int64_t begin, int64_t end) {
    Node<T> n;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / HW, y = (p % HW) / W, xx = p % W;
      const T* zb = z + b * HW * C;
      const T* op = off.at(b, p % HW);
      T* __restrict__ o = out + p * O;
      for (int64_t c = 0; c < O; ++c) o[c] = T(0);
      for (int64_t k = 0; k < K; ++k) {
        T py, px;
        position(y, xx, 0, k, ks, c0, dil, op, off.sc, k, py, px);
        if (!make_node<T>(py, px, H, W, C, zb, nullptr, zero.data(), nullptr, n)) continue;
        const T a0 = n.coef[0], a1 = n.coef[1], a2 = n.coef[2], a3 = n.coef[3];
        const T *__restrict__ s0 = n.src[0] + k * O, *__restrict__ s1 = n.src[1] + k * O;
        const T *__restrict__ s2 = n.src[2] + k * O, *__restrict__ s3 = n.src[3] + k * O;
#pragma omp simd
        for (int64_t c = 0; c < O; ++c) o[c] += a0 * s0[c] + a1 * s1[c] + a2 * s2[c] + a3 * s3[c];
      }
    }
  });
}

// Backward of taps_forward_impl: grad_z scattered (per-thread buffers as in backward_impl), grad_offset per node.
template <typename T>
void taps_backward_impl(const T* z, Planes<const T> off, const T* gout, T* gz, T* scratch, int64_t nbuf, Planes<T> goff,
                        const std::vector<int64_t>& dil, int64_t B, int64_t H, int64_t W, int64_t ks, int64_t O, bool need_gz) {
  const int64_t K = ks * ks, HW = H * W, C = K * O;
  const T c0 = T(ks - 1) / T(2);
  const std::vector<T> zero(C, T(0));
  ScatterBuffers<T> bufs(gz, scratch, nbuf, B * HW * C);  // z's gradient: one buffer per thread
  at::parallel_for(0, B * HW, 16, [&](int64_t begin, int64_t end) {
    T* gzt = need_gz ? bufs.claim(at::get_thread_num(), "deform taps backward") : nullptr;
    std::vector<T> sink(C, T(0));
    Node<T> n;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / HW, y = (p % HW) / W, xx = p % W;
      const T* zb = z + b * HW * C;
      T* gzb = need_gz ? gzt + b * HW * C : nullptr;
      const T* op = off.at(b, p % HW);
      const T* __restrict__ go = gout + p * O;
      T* gop = goff.at(b, p % HW);
      for (int64_t k = 0; k < K; ++k) {
        T py, px;
        position(y, xx, 0, k, ks, c0, dil, op, off.sc, k, py, px);
        gop[(k * 2) * goff.sc] = gop[(k * 2 + 1) * goff.sc] = T(0);
        if (!make_node<T>(py, px, H, W, C, zb, gzb, zero.data(), sink.data(), n)) continue;
        const T *__restrict__ s0 = n.src[0] + k * O, *__restrict__ s1 = n.src[1] + k * O;
        const T *__restrict__ s2 = n.src[2] + k * O, *__restrict__ s3 = n.src[3] + k * O;
        T d0 = T(0), d1 = T(0), d2 = T(0), d3 = T(0);  // <grad_out, corner i>
#pragma omp simd reduction(+ : d0, d1, d2, d3)
        for (int64_t c = 0; c < O; ++c) {
          d0 += go[c] * s0[c];
          d1 += go[c] * s1[c];
          d2 += go[c] * s2[c];
          d3 += go[c] * s3[c];
        }
        gop[(k * 2) * goff.sc] = n.dcy[0] * d0 + n.dcy[1] * d1 + n.dcy[2] * d2 + n.dcy[3] * d3;
        gop[(k * 2 + 1) * goff.sc] = n.dcx[0] * d0 + n.dcx[1] * d1 + n.dcx[2] * d2 + n.dcx[3] * d3;
        if (need_gz) {
          const T a0 = n.coef[0], a1 = n.coef[1], a2 = n.coef[2], a3 = n.coef[3];
          T *t0 = n.dst[0] + k * O, *t1 = n.dst[1] + k * O, *t2 = n.dst[2] + k * O, *t3 = n.dst[3] + k * O;
#pragma omp simd
          for (int64_t c = 0; c < O; ++c) {
            t0[c] += a0 * go[c];
            t1[c] += a1 * go[c];
            t2[c] += a2 * go[c];
            t3[c] += a3 * go[c];
          }
        }
      }
    }
  });
  if (need_gz) bufs.reduce();
}

}  // namespace

// z: (B, H, W, K*O) contiguous, layout [k][o]; offset: (B, 2K, H, W) planes. Returns (B, O, H, W) channels-last.
torch::Tensor taps_forward(torch::Tensor z, torch::Tensor off, int64_t dilation, int64_t ks) {
  check(z, "z");
  check_planes(off, "offset");
  const int64_t B = z.size(0), H = z.size(1), W = z.size(2), O = z.size(3) / (ks * ks);
  auto out = torch::empty({B, O, H, W}, z.options().memory_format(at::MemoryFormat::ChannelsLast));
  const std::vector<int64_t> dil{dilation};
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "deform_taps_forward", [&] {
    taps_forward_impl<scalar_t>(z.data_ptr<scalar_t>(), planes<const scalar_t>(off), out.data_ptr<scalar_t>(), dil, B, H, W,
                                ks, O);
  });
  return out;
}

// grad_out: (B, H, W, O) contiguous. Returns (grad_z (B, K*O, H, W) channels-last or empty, grad_offset).
std::vector<torch::Tensor> taps_backward(torch::Tensor gout, torch::Tensor z, torch::Tensor off, int64_t dilation, int64_t ks,
                                         bool need_gz) {
  check(gout, "grad_out");
  check(z, "z");
  check_planes(off, "offset");
  const int64_t B = z.size(0), H = z.size(1), W = z.size(2), O = z.size(3) / (ks * ks);
  auto gz = need_gz ? nchw_channels_last(z, true) : torch::empty({0}, z.options());
  const int64_t nbuf = need_gz ? at::get_num_threads() - 1 : 0;
  auto scratch = torch::zeros({nbuf > 0 ? nbuf * z.numel() : 0}, z.options());
  auto goff = torch::empty_like(off);
  const std::vector<int64_t> dil{dilation};
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "deform_taps_backward", [&] {
    taps_backward_impl<scalar_t>(z.data_ptr<scalar_t>(), planes<const scalar_t>(off), gout.data_ptr<scalar_t>(),
                                 need_gz ? gz.data_ptr<scalar_t>() : nullptr, nbuf > 0 ? scratch.data_ptr<scalar_t>() : nullptr,
                                 nbuf, planes<scalar_t>(goff), dil, B, H, W, ks, O, need_gz);
  });
  return {gz, goff};
}

// x and grad_out: (B, H, W, C) contiguous. offset, weight: (B, channels, H, W), NCHW or channels-last.
// Returns (B, C, H, W) in channels-last memory format.
torch::Tensor forward(torch::Tensor x, torch::Tensor off, torch::Tensor wgt, std::vector<int64_t> dil, int64_t ks) {
  check(x, "x");
  check_planes(off, "offset");
  check_planes(wgt, "weight");
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t G = wgt.size(1) / (static_cast<int64_t>(dil.size()) * ks * ks);
  auto out = nchw_channels_last(x, false);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dynamic_aggregate_forward", [&] {
    forward_impl<scalar_t>(x.data_ptr<scalar_t>(), planes<const scalar_t>(off), planes<const scalar_t>(wgt),
                           out.data_ptr<scalar_t>(), dil, B, H, W, C, ks, G);
  });
  return out;
}

std::vector<torch::Tensor> backward(torch::Tensor gout, torch::Tensor x, torch::Tensor off, torch::Tensor wgt,
                                    std::vector<int64_t> dil, int64_t ks, bool need_gx, bool need_gw) {
  check(gout, "grad_out");
  check(x, "x");
  check_planes(off, "offset");
  check_planes(wgt, "weight");
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t G = wgt.size(1) / (static_cast<int64_t>(dil.size()) * ks * ks);
  auto gx = need_gx ? nchw_channels_last(x, true) : torch::empty({0}, x.options());
  const int64_t nbuf = need_gx ? at::get_num_threads() - 1 : 0;
  auto scratch = torch::zeros({nbuf > 0 ? nbuf * x.numel() : 0}, x.options());
  // Gradients take the layout of their inputs (empty_like keeps NCHW or channels-last strides).
  auto goff = torch::empty_like(off);
  auto gw = torch::empty_like(wgt);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dynamic_aggregate_backward", [&] {
    backward_impl<scalar_t>(x.data_ptr<scalar_t>(), planes<const scalar_t>(off), planes<const scalar_t>(wgt),
                            gout.data_ptr<scalar_t>(), need_gx ? gx.data_ptr<scalar_t>() : nullptr,
                            nbuf > 0 ? scratch.data_ptr<scalar_t>() : nullptr, nbuf, planes<scalar_t>(goff),
                            planes<scalar_t>(gw), dil, B, H, W, C, ks, G, need_gx, need_gw);
  });
  return {gx, goff, gw};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "dynamic_aggregate forward (channels-last)");
  m.def("backward", &backward, "dynamic_aggregate backward (channels-last)");
  m.def("taps_forward", &taps_forward, "deformable-convolution taps, summed (channels-last)");
  m.def("taps_backward", &taps_backward, "backward of taps_forward (channels-last)");
}
