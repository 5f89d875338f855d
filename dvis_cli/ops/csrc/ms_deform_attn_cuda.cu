// CUDA kernels of multi-scale deformable attention (float32, float64, float16, bfloat16).
//
// Forward: one thread per output element (b, q, m, c); it walks the L * P points of its head and
// accumulates in the op-math type (float for half precision).
//
// Backward: a group of G lanes of one warp owns one (b, q, m) row, G = the smallest power of two
// >= Dh, at most 32 (so several rows share a warp when Dh < 32). Lanes stride over the channels,
// scatter into grad_value with atomicAdd (into a float buffer for half precision), and the
// per-point channel sums behind the location and weight gradients are reduced with warp shuffles;
// lane 0 of the group then writes those gradients, which no other thread touches.
//
// The per-point arithmetic is shared with the CPU kernel (sampling.h). Only c10/cuda headers are
// used (not ATen/cuda/CUDAContext.h), so the build needs nothing from the toolkit beyond nvcc and
// the CUDA runtime (no cuBLAS / cuSPARSE headers).
#include "ms_deform_attn.h"
#include "sampling.h"

#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <algorithm>

namespace dvis {
namespace {

constexpr int kThreads = 256;          // threads per block, a multiple of the warp size
constexpr int kWarp = 32;
constexpr int64_t kMaxBlocks = 1 << 20; // grid-stride loops cover any remainder

int64_t blocks_for(int64_t threads_needed) {
  return std::max<int64_t>(1, std::min<int64_t>((threads_needed + kThreads - 1) / kThreads, kMaxBlocks));
}

__device__ __forceinline__ void atomic_add(float* address, float v) {
  atomicAdd(address, v);
}

__device__ __forceinline__ void atomic_add(double* address, double v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 600
  auto* bits = reinterpret_cast<unsigned long long*>(address);
  unsigned long long old = *bits, assumed;
  do {
    assumed = old;
    old = atomicCAS(bits, assumed, __double_as_longlong(v + __longlong_as_double(assumed)));
  } while (assumed != old);
#else
  atomicAdd(address, v);
#endif
}

// Sum over the `group` lanes (a power of two <= 32) that share a row; every lane gets the total.
// All 32 lanes of the warp must call it together.
template <typename acc_t>
__device__ __forceinline__ acc_t group_sum(acc_t v, int group) {
  for (int offset = group / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset, group);
  }
  return v;
}

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(
    const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes, const int64_t* __restrict__ starts,
    const scalar_t* __restrict__ locations, const scalar_t* __restrict__ weights, scalar_t* __restrict__ output,
    const MSDeformAttnDims d) {
  const int64_t M = d.num_heads, Dh = d.head_dim, L = d.num_levels, P = d.num_points;
  const int64_t pixel_stride = M * Dh;
  const int64_t total = d.batch * d.num_queries * M * Dh;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    const int64_t c = i % Dh;
    const int64_t head_row = i / Dh;  // (b * Lq + q) * M + m
    const int64_t m = head_row % M;
    const int64_t b = head_row / (M * d.num_queries);
    const scalar_t* value_bmc = value + b * d.num_keys * pixel_stride + m * Dh + c;
    const int64_t point0 = head_row * L * P;
    acc_t acc = acc_t(0);
    for (int64_t l = 0; l < L; ++l) {
      const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
      const scalar_t* value_l = value_bmc + starts[l] * pixel_stride;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t point = point0 + l * P + p;
        const auto pt = locate<acc_t>(
            static_cast<acc_t>(locations[2 * point]), static_cast<acc_t>(locations[2 * point + 1]), height, width);
        acc_t sample = pt.finite ? acc_t(0) : not_a_number<acc_t>();
        for (int k = 0; k < 4; ++k) {
          if (pt.tap[k] >= 0) {
            sample += pt.weight[k] * static_cast<acc_t>(value_l[pt.tap[k] * pixel_stride]);
          }
        }
        acc += static_cast<acc_t>(weights[point]) * sample;
      }
    }
    output[i] = static_cast<scalar_t>(acc);
  }
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(
    const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes, const int64_t* __restrict__ starts,
    const scalar_t* __restrict__ locations, const scalar_t* __restrict__ weights,
    const scalar_t* __restrict__ grad_output, acc_t* __restrict__ grad_value, scalar_t* __restrict__ grad_locations,
    scalar_t* __restrict__ grad_weights, const MSDeformAttnDims d, const int group) {
  const int64_t M = d.num_heads, Dh = d.head_dim, L = d.num_levels, P = d.num_points;
  const int64_t pixel_stride = M * Dh;
  const int64_t rows = d.batch * d.num_queries * M;
  const int rows_per_warp = kWarp / group;
  const int lane = threadIdx.x % group;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarp;
  // `first` is the same for the whole warp, so every lane runs the loop equally often and the
  // shuffles below always see the full warp.
  for (int64_t first = warp * rows_per_warp; first < rows; first += warps * rows_per_warp) {
    const int64_t row = first + (threadIdx.x % kWarp) / group;
    const bool active = row < rows;
    const int64_t r = active ? row : first;  // inactive lanes mirror a valid row and never write
    const int64_t m = r % M;
    const int64_t b = r / (M * d.num_queries);
    const scalar_t* g = grad_output + r * Dh;
    const int64_t value_bm = b * d.num_keys * pixel_stride + m * Dh;

    acc_t part = acc_t(0);
    if (active) {
      for (int64_t c = lane; c < Dh; c += group) {
        part += static_cast<acc_t>(g[c]);
      }
    }
    const acc_t outside = acc_t(0) * group_sum(part, group);  // NaN when the incoming gradient is not finite

    for (int64_t l = 0; l < L; ++l) {
      const int64_t height = shapes[2 * l], width = shapes[2 * l + 1];
      const int64_t level_offset = value_bm + starts[l] * pixel_stride;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t point = r * L * P + l * P + p;
        const auto pt = locate<acc_t>(
            static_cast<acc_t>(locations[2 * point]), static_cast<acc_t>(locations[2 * point + 1]), height, width);
        const acc_t attn = static_cast<acc_t>(weights[point]);
        acc_t e[4] = {acc_t(0), acc_t(0), acc_t(0), acc_t(0)};
        if (active && pt.finite) {
          for (int k = 0; k < 4; ++k) {
            if (pt.tap[k] < 0) {
              continue;
            }
            const int64_t offset = level_offset + pt.tap[k] * pixel_stride;
            const acc_t scale = pt.weight[k] * attn;
            acc_t dot = acc_t(0);
            for (int64_t c = lane; c < Dh; c += group) {
              const acc_t gc = static_cast<acc_t>(g[c]);
              dot += gc * static_cast<acc_t>(value[offset + c]);
              atomic_add(grad_value + offset + c, scale * gc);
            }
            e[k] = dot;
          }
        }
        for (int k = 0; k < 4; ++k) {
          e[k] = group_sum(e[k], group);
        }
        if (active && lane == 0) {
          for (int k = 0; k < 4; ++k) {
            if (!pt.finite || pt.tap[k] < 0) {
              e[k] = outside;
            }
          }
          const auto grads = point_grads<acc_t>(pt, e, attn, height, width);
          grad_weights[point] = static_cast<scalar_t>(grads.attn);
          grad_locations[2 * point] = static_cast<scalar_t>(grads.x);
          grad_locations[2 * point + 1] = static_cast<scalar_t>(grads.y);
        }
      }
    }
  }
}

int lanes_per_row(int64_t head_dim) {
  int group = 1;
  while (group < kWarp && group < head_dim) {
    group *= 2;
  }
  return group;
}

}  // namespace

at::Tensor ms_deform_attn_forward_cuda(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const MSDeformAttnDims& dims) {
  const c10::cuda::CUDAGuard guard(value.device());
  auto output = at::empty({dims.batch, dims.num_queries, dims.num_heads * dims.head_dim}, value.options());
  const int64_t total = output.numel();
  if (total == 0) {
    return output;
  }
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(), "dvis_ms_deform_attn_forward_cuda", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        forward_kernel<scalar_t, acc_t><<<blocks_for(total), kThreads, 0, stream>>>(
            value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(), level_start_index.data_ptr<int64_t>(),
            sampling_locations.data_ptr<scalar_t>(), attention_weights.data_ptr<scalar_t>(),
            output.data_ptr<scalar_t>(), dims);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return output;
}

std::vector<at::Tensor> ms_deform_attn_backward_cuda(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const at::Tensor& grad_output,
    const MSDeformAttnDims& dims) {
  // The scatter into grad_value uses atomicAdd: summation order varies from run to run.
  at::globalContext().alertNotDeterministic("dvis ms_deform_attn_backward_cuda");
  const c10::cuda::CUDAGuard guard(value.device());
  const auto acc_type = at::toOpMathType(value.scalar_type());
  auto grad_value_acc = at::zeros(value.sizes(), value.options().dtype(acc_type));
  auto grad_locations = at::zeros_like(sampling_locations);
  auto grad_weights = at::zeros_like(attention_weights);
  const int64_t rows = dims.batch * dims.num_queries * dims.num_heads;
  if (rows > 0 && dims.head_dim > 0 && dims.num_levels * dims.num_points > 0) {
    const int group = lanes_per_row(dims.head_dim);
    const int64_t threads_needed = (rows + (kWarp / group) - 1) / (kWarp / group) * kWarp;
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::ScalarType::Half, at::ScalarType::BFloat16, value.scalar_type(), "dvis_ms_deform_attn_backward_cuda", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          backward_kernel<scalar_t, acc_t><<<blocks_for(threads_needed), kThreads, 0, stream>>>(
              value.data_ptr<scalar_t>(), spatial_shapes.data_ptr<int64_t>(), level_start_index.data_ptr<int64_t>(),
              sampling_locations.data_ptr<scalar_t>(), attention_weights.data_ptr<scalar_t>(),
              grad_output.data_ptr<scalar_t>(), grad_value_acc.data_ptr<acc_t>(),
              grad_locations.data_ptr<scalar_t>(), grad_weights.data_ptr<scalar_t>(), dims, group);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  auto grad_value = grad_value_acc.scalar_type() == value.scalar_type() ? grad_value_acc
                                                                         : grad_value_acc.to(value.scalar_type());
  return {grad_value, grad_locations, grad_weights};
}

int cuda_runtime_version() {
  return CUDART_VERSION;
}

}  // namespace dvis
