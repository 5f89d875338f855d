// CPU kernels of multi-scale deformable attention (float32 and float64).
//
// Forward: parallel over (batch, query) rows; each row owns its output, so no synchronisation.
// Backward: parallel over (batch, head) pairs; a pair owns grad_value[b, :, m, :] and the location
// and weight gradients of all its queries, so the scatter into grad_value needs no atomics and the
// result is deterministic.
#include "ms_deform_attn.h"
#include "sampling.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <vector>

namespace dvis {
namespace {

// Rows of work per parallel chunk below which threads are not worth starting.
int64_t grain_for(int64_t work_per_item) {
  constexpr int64_t kTargetWork = 1 << 15;
  return std::max<int64_t>(1, kTargetWork / std::max<int64_t>(1, work_per_item));
}

template <typename scalar_t>
void forward_kernel(
    const scalar_t* value, const int64_t* shapes, const int64_t* starts, const scalar_t* locations,
    const scalar_t* weights, scalar_t* output, const MSDeformAttnDims& d) {
  const int64_t M = d.num_heads, Dh = d.head_dim, L = d.num_levels, P = d.num_points;
  const int64_t pixel_stride = M * Dh;  // distance between two pixels of one head in `value`
  const int64_t rows = d.batch * d.num_queries;
  at::parallel_for(0, rows, grain_for(M * L * P * Dh), [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> sample(Dh);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / d.num_queries;
      const scalar_t* value_b = value + b * d.num_keys * pixel_stride;
      scalar_t* out_row = output + row * M * Dh;
      std::fill(out_row, out_row + M * Dh, scalar_t(0));
      for (int64_t m = 0; m < M; ++m) {
        scalar_t* out = out_row + m * Dh;
        const int64_t point0 = (row * M + m) * L * P;
        for (int64_t l = 0; l < L; ++l) {
          const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
          const scalar_t* value_l = value_b + starts[l] * pixel_stride + m * Dh;
          for (int64_t p = 0; p < P; ++p) {
            const int64_t point = point0 + l * P + p;
            const auto pt = locate<scalar_t>(locations[2 * point], locations[2 * point + 1], height, width);
            const scalar_t attn = weights[point];
            std::fill(sample.begin(), sample.end(), pt.finite ? scalar_t(0) : not_a_number<scalar_t>());
            for (int k = 0; k < 4; ++k) {
              if (pt.tap[k] < 0) {
                continue;
              }
              const scalar_t* v = value_l + pt.tap[k] * pixel_stride;
              const scalar_t w = pt.weight[k];
              for (int64_t c = 0; c < Dh; ++c) {
                sample[c] += w * v[c];
              }
            }
            for (int64_t c = 0; c < Dh; ++c) {
              out[c] += attn * sample[c];
            }
          }
        }
      }
    }
  });
}

template <typename scalar_t>
scalar_t dot(const scalar_t* a, const scalar_t* b, int64_t n) {
  // Four partial sums: lets the compiler vectorise without reassociating a single chain.
  scalar_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t c = 0;
  for (; c + 4 <= n; c += 4) {
    s0 += a[c] * b[c];
    s1 += a[c + 1] * b[c + 1];
    s2 += a[c + 2] * b[c + 2];
    s3 += a[c + 3] * b[c + 3];
  }
  for (; c < n; ++c) {
    s0 += a[c] * b[c];
  }
  return (s0 + s1) + (s2 + s3);
}

template <typename scalar_t>
void backward_kernel(
    const scalar_t* value, const int64_t* shapes, const int64_t* starts, const scalar_t* locations,
    const scalar_t* weights, const scalar_t* grad_output, scalar_t* grad_value, scalar_t* grad_locations,
    scalar_t* grad_weights, const MSDeformAttnDims& d) {
  const int64_t M = d.num_heads, Dh = d.head_dim, L = d.num_levels, P = d.num_points, Lq = d.num_queries;
  const int64_t pixel_stride = M * Dh;
  at::parallel_for(0, d.batch * M, grain_for(Lq * L * P * Dh), [&](int64_t begin, int64_t end) {
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / M, m = pair % M;
      const scalar_t* value_bm = value + b * d.num_keys * pixel_stride + m * Dh;
      scalar_t* grad_value_bm = grad_value + b * d.num_keys * pixel_stride + m * Dh;
      for (int64_t q = 0; q < Lq; ++q) {
        const int64_t row = b * Lq + q;
        const scalar_t* g = grad_output + (row * M + m) * Dh;
        scalar_t g_sum = 0;
        for (int64_t c = 0; c < Dh; ++c) {
          g_sum += g[c];
        }
        const scalar_t outside = scalar_t(0) * g_sum;  // NaN when the incoming gradient is not finite
        const int64_t point0 = (row * M + m) * L * P;
        for (int64_t l = 0; l < L; ++l) {
          const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
          const int64_t level_offset = starts[l] * pixel_stride;
          for (int64_t p = 0; p < P; ++p) {
            const int64_t point = point0 + l * P + p;
            const auto pt = locate<scalar_t>(locations[2 * point], locations[2 * point + 1], height, width);
            const scalar_t attn = weights[point];
            scalar_t e[4];
            for (int k = 0; k < 4; ++k) {
              if (!pt.finite || pt.tap[k] < 0) {
                e[k] = outside;
                continue;
              }
              const int64_t offset = level_offset + pt.tap[k] * pixel_stride;
              e[k] = dot(g, value_bm + offset, Dh);
              scalar_t* gv = grad_value_bm + offset;
              const scalar_t scale = pt.weight[k] * attn;
              for (int64_t c = 0; c < Dh; ++c) {
                gv[c] += scale * g[c];
              }
            }
            const auto grads = point_grads<scalar_t>(pt, e, attn, height, width);
            grad_weights[point] = grads.attn;
            grad_locations[2 * point] = grads.x;
            grad_locations[2 * point + 1] = grads.y;
          }
        }
      }
    }
  });
}

}  // namespace

at::Tensor ms_deform_attn_forward_cpu(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const MSDeformAttnDims& dims) {
  auto output = at::empty({dims.batch, dims.num_queries, dims.num_heads * dims.head_dim}, value.options());
  if (output.numel() == 0) {
    return output;
  }
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "dvis_ms_deform_attn_forward_cpu", [&] {
    forward_kernel<scalar_t>(
        value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(), level_start_index.data_ptr<int64_t>(),
        sampling_locations.data_ptr<scalar_t>(), attention_weights.data_ptr<scalar_t>(),
        output.data_ptr<scalar_t>(), dims);
  });
  return output;
}

std::vector<at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const at::Tensor& grad_output,
    const MSDeformAttnDims& dims) {
  auto grad_value = at::zeros_like(value);
  auto grad_locations = at::zeros_like(sampling_locations);
  auto grad_weights = at::zeros_like(attention_weights);
  if (grad_output.numel() == 0 || grad_weights.numel() == 0) {
    return {grad_value, grad_locations, grad_weights};
  }
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "dvis_ms_deform_attn_backward_cpu", [&] {
    backward_kernel<scalar_t>(
        value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(), level_start_index.data_ptr<int64_t>(),
        sampling_locations.data_ptr<scalar_t>(), attention_weights.data_ptr<scalar_t>(),
        grad_output.data_ptr<scalar_t>(), grad_value.data_ptr<scalar_t>(), grad_locations.data_ptr<scalar_t>(),
        grad_weights.data_ptr<scalar_t>(), dims);
  });
  return {grad_value, grad_locations, grad_weights};
}

}  // namespace dvis
