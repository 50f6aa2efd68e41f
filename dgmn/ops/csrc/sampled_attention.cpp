// Fused CPU forward of dgmn.ops.sampled_attention (DGMN2's sampled attention), one pass per pixel and head.
//
// Shapes (see sampled_attention.py): q, k, v (B, H, W, h, d) with the d channels contiguous (any other strides,
// e.g. views into one qkv tensor); offset (B, H, W, h, 18), layout [k][dy, dx], any strides; pos (B, h, 9, H, W),
// any strides; out (B, H, W, h, d) contiguous. For pixel (y, x), head n, sample k = ky*3 + kx:
//   p_k = (y + ky - 1 + dy_k, x + kx - 1 + dx_k)
//   l_k = scale * q . bilinear(k, p_k) + pos_k,   a = softmax_k(l),   out = sum_k a_k * bilinear(v, p_k)
// bilinear is zero outside the map, corner by corner (as dynamic_aggregate's kernel: a position not inside
// (-1, H) x (-1, W), or NaN, samples nothing). No (B, h, 9, d, H, W) intermediate: the 9 samples' 4 corners
// are read straight from k and v.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

template <typename T>
inline T dot(const T* a, const T* b, int64_t d) {
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (int64_t c = 0; c < d; ++c) acc += a[c] * b[c];
  return acc;
}

template <typename T>
inline void axpy(T w, const T* x, T* y, int64_t d) {
#pragma omp simd
  for (int64_t c = 0; c < d; ++c) y[c] += w * x[c];
}

template <typename T>
void forward_impl(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& off,
                  const torch::Tensor& pos, double scale_d, torch::Tensor& out) {
  const int64_t B = q.size(0), H = q.size(1), W = q.size(2), NH = q.size(3), D = q.size(4);
  const T* qp = q.data_ptr<T>();
  const T* kp = k.data_ptr<T>();
  const T* vp = v.data_ptr<T>();
  const T* op = off.data_ptr<T>();
  const T* pp = pos.data_ptr<T>();
  T* outp = out.data_ptr<T>();
  const auto qs = q.strides(), ks = k.strides(), vs = v.strides(), os = off.strides(), ps = pos.strides();
  const T scale = static_cast<T>(scale_d);
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H;
      for (int64_t x = 0; x < W; ++x) {
        for (int64_t n = 0; n < NH; ++n) {
          const T* qv = qp + b * qs[0] + y * qs[1] + x * qs[2] + n * qs[3];
          const T* ob = op + b * os[0] + y * os[1] + x * os[2] + n * os[3];
          const T* pb = pp + b * ps[0] + n * ps[1] + y * ps[3] + x * ps[4];
          const T* kb = kp + b * ks[0] + n * ks[3];
          const T* vb = vp + b * vs[0] + n * vs[3];
          int64_t cy[9][4], cx[9][4];
          T coef[9][4];
          bool ok[9][4];
          T logit[9];
          for (int s = 0; s < 9; ++s) {
            const T py = T(y) + T(s / 3 - 1) + ob[(2 * s) * os[4]];
            const T px = T(x) + T(s % 3 - 1) + ob[(2 * s + 1) * os[4]];
            T content = T(0);
            if (!(py > T(-1) && py < T(H) && px > T(-1) && px < T(W))) {
              for (int i = 0; i < 4; ++i) ok[s][i] = false;
            } else {
              const T fy = std::floor(py), fx = std::floor(px);
              const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
              const T ly = py - fy, lx = px - fx;
              const T wy[2] = {T(1) - ly, ly}, wx[2] = {T(1) - lx, lx};
              int i = 0;
              for (int a = 0; a < 2; ++a) {
                for (int c = 0; c < 2; ++c, ++i) {
                  const int64_t iy = y0 + a, ix = x0 + c;
                  ok[s][i] = iy >= 0 && iy < H && ix >= 0 && ix < W;
                  cy[s][i] = iy;
                  cx[s][i] = ix;
                  coef[s][i] = wy[a] * wx[c];
                  if (ok[s][i]) content += coef[s][i] * dot(qv, kb + iy * ks[1] + ix * ks[2], D);
                }
              }
            }
            logit[s] = scale * content + pb[s * ps[2]];
          }
          T m = logit[0];
          for (int s = 1; s < 9; ++s) m = logit[s] > m ? logit[s] : m;
          T sum = T(0);
          for (int s = 0; s < 9; ++s) {
            logit[s] = std::exp(logit[s] - m);
            sum += logit[s];
          }
          const T inv = T(1) / sum;
          T* o = outp + (((b * H + y) * W + x) * NH + n) * D;
          for (int64_t c = 0; c < D; ++c) o[c] = T(0);
          for (int s = 0; s < 9; ++s) {
            const T a = logit[s] * inv;
            for (int i = 0; i < 4; ++i) {
              if (ok[s][i]) axpy(a * coef[s][i], vb + cy[s][i] * vs[1] + cx[s][i] * vs[2], o, D);
            }
          }
        }
      }
    }
  });
}

torch::Tensor forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, torch::Tensor offset, torch::Tensor pos,
                      double scale) {
  TORCH_CHECK(q.dim() == 5 && k.sizes() == q.sizes() && v.sizes() == q.sizes(), "q, k, v must be (B, H, W, h, d)");
  TORCH_CHECK(q.stride(4) == 1 && k.stride(4) == 1 && v.stride(4) == 1, "q, k, v need contiguous channels");
  TORCH_CHECK(offset.dim() == 5 && offset.size(4) == 18, "offset must be (B, H, W, h, 18)");
  TORCH_CHECK(pos.dim() == 5 && pos.size(2) == 9, "pos must be (B, h, 9, H, W)");
  auto out = torch::empty(q.sizes(), q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "sampled_attention_forward", [&] {
    forward_impl<scalar_t>(q, k, v, offset, pos, scale, out);
  });
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "DGMN2 sampled attention, fused forward (CPU)");
}
