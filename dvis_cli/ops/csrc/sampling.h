// Bilinear sampling math shared by the CPU and CUDA kernels of multi-scale deformable attention.
//
// Everything here is plain arithmetic on one sampling point, usable from host and device code, so
// the numbers tested on the CPU are produced by the same lines that run on the GPU.
//
// Conventions (identical to the pure-PyTorch reference, F.grid_sample with align_corners=False and
// zero padding):
//   * a location (x, y) in [0, 1] maps to the grid coordinate g = 2 * x - 1, then to the pixel
//     coordinate ix = (g + 1) * W / 2 - 0.5 (and iy likewise with H);
//   * the four taps are (r0, c0), (r0, c1), (r1, c0), (r1, c1) with r0 = floor(iy), r1 = r0 + 1,
//     c0 = floor(ix), c1 = c0 + 1; a tap outside the map reads as zero;
//   * a non-finite coordinate (NaN or inf) makes the whole sample NaN, as grid_sample does on CPU.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#include <math_constants.h>
#define DVIS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DVIS_HOST_DEVICE inline
#endif

namespace dvis {

template <typename acc_t>
DVIS_HOST_DEVICE bool is_finite(acc_t v) {
#if defined(__CUDA_ARCH__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

template <typename acc_t>
DVIS_HOST_DEVICE acc_t floor_of(acc_t v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  return std::floor(v);
#endif
}

template <typename acc_t>
DVIS_HOST_DEVICE acc_t not_a_number() {
#if defined(__CUDA_ARCH__)
  return static_cast<acc_t>(CUDART_NAN);
#else
  return std::numeric_limits<acc_t>::quiet_NaN();
#endif
}

// Where one sampling point lands on one level, and the bilinear weights of its taps.
template <typename acc_t>
struct BilinearPoint {
  bool finite;     // both coordinates are finite numbers
  int64_t tap[4];  // pixel index (row * W + col) of each tap inside the map, -1 for a tap outside
  acc_t weight[4]; // bilinear weight of each tap
  acc_t fy0, fy1;  // r1 - iy and iy - r0
  acc_t fx0, fx1;  // c1 - ix and ix - c0
};

template <typename acc_t>
DVIS_HOST_DEVICE BilinearPoint<acc_t> locate(acc_t x, acc_t y, int64_t height, int64_t width) {
  BilinearPoint<acc_t> pt;
  const acc_t one = acc_t(1);
  const acc_t half = acc_t(0.5);
  // Same two steps as the reference: normalise to [-1, 1], then unnormalise (align_corners=False).
  const acc_t gx = x * acc_t(2) - one;
  const acc_t gy = y * acc_t(2) - one;
  const acc_t ix = (gx + one) * (static_cast<acc_t>(width) * half) - half;
  const acc_t iy = (gy + one) * (static_cast<acc_t>(height) * half) - half;
  for (int k = 0; k < 4; ++k) {
    pt.tap[k] = -1;
    pt.weight[k] = acc_t(0);
  }
  pt.fy0 = pt.fy1 = pt.fx0 = pt.fx1 = acc_t(0);
  pt.finite = is_finite(ix) && is_finite(iy);
  if (!pt.finite) {
    return pt;
  }
  // Far outside the map no tap can be inside; this also keeps the casts below in range.
  if (!(iy >= -one && iy < static_cast<acc_t>(height) && ix >= -one && ix < static_cast<acc_t>(width))) {
    return pt;  // no tap inside: the sample is zero, and so are its fractions

  }
  const acc_t r0f = floor_of(iy);
  const acc_t c0f = floor_of(ix);
  pt.fy1 = iy - r0f;
  pt.fy0 = (r0f + one) - iy;
  pt.fx1 = ix - c0f;
  pt.fx0 = (c0f + one) - ix;
  const int64_t r0 = static_cast<int64_t>(r0f);
  const int64_t c0 = static_cast<int64_t>(c0f);
  const bool row_in[2] = {r0 >= 0, r0 + 1 < height};
  const bool col_in[2] = {c0 >= 0, c0 + 1 < width};
  const acc_t wy[2] = {pt.fy0, pt.fy1};
  const acc_t wx[2] = {pt.fx0, pt.fx1};
  for (int dr = 0; dr < 2; ++dr) {
    for (int dc = 0; dc < 2; ++dc) {
      const int k = dr * 2 + dc;
      pt.weight[k] = wy[dr] * wx[dc];
      if (row_in[dr] && col_in[dc]) {
        pt.tap[k] = (r0 + dr) * width + (c0 + dc);
      }
    }
  }
  return pt;
}

// Gradients of one sampling point from the per-tap dot products e[k] = sum_c g_c * v_k[c], where g
// is the incoming gradient of the head's output row and v_k the value row at tap k (e[k] holds
// 0 * sum_c g_c for a tap outside the map, so a non-finite g still poisons the result as in the
// reference). `attn` is the point's attention weight; height/width are the level's size.
template <typename acc_t>
struct PointGrads {
  acc_t attn;  // d loss / d attention weight
  acc_t x;     // d loss / d sampling location x
  acc_t y;     // d loss / d sampling location y
};

template <typename acc_t>
DVIS_HOST_DEVICE PointGrads<acc_t> point_grads(
    const BilinearPoint<acc_t>& pt, const acc_t e[4], acc_t attn, int64_t height, int64_t width) {
  PointGrads<acc_t> g;
  if (!pt.finite) {
    const acc_t nan = not_a_number<acc_t>();
    g.attn = nan;
    g.x = nan;
    g.y = nan;
    return g;
  }
  g.attn = pt.weight[0] * e[0] + pt.weight[1] * e[1] + pt.weight[2] * e[2] + pt.weight[3] * e[3];
  // d ix / d x = W and d iy / d y = H (chain rule through the two normalisation steps).
  const acc_t d_ix = pt.fy0 * (e[1] - e[0]) + pt.fy1 * (e[3] - e[2]);
  const acc_t d_iy = pt.fx0 * (e[2] - e[0]) + pt.fx1 * (e[3] - e[1]);
  g.x = attn * d_ix * static_cast<acc_t>(width);
  g.y = attn * d_iy * static_cast<acc_t>(height);
  return g;
}

}  // namespace dvis
