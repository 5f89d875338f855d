// Multi-scale deformable attention: the device kernels behind dvis_cli._C.
//
// Tensor contract (checked in bindings.cpp before any kernel runs; every tensor is contiguous and
// on one device by then):
//   value               [N, S, M, Dh]         S = sum over levels of H_l * W_l
//   spatial_shapes      [L, 2] int64          (H_l, W_l)
//   level_start_index   [L]    int64          prefix sums of H_l * W_l
//   sampling_locations  [N, Lq, M, L, P, 2]   (x, y), normalised to [0, 1], may lie outside
//   attention_weights   [N, Lq, M, L, P]
//   output              [N, Lq, M * Dh]
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace dvis {

struct MSDeformAttnDims {
  int64_t batch;       // N
  int64_t num_keys;    // S
  int64_t num_heads;   // M
  int64_t head_dim;    // Dh
  int64_t num_queries; // Lq
  int64_t num_levels;  // L
  int64_t num_points;  // P
};

// spatial_shapes and level_start_index are on the same device as value (the kernels read them there).
at::Tensor ms_deform_attn_forward_cpu(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const MSDeformAttnDims& dims);

// Returns {grad_value, grad_sampling_locations, grad_attention_weights}.
std::vector<at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const at::Tensor& grad_output,
    const MSDeformAttnDims& dims);

#ifdef DVIS_WITH_CUDA
at::Tensor ms_deform_attn_forward_cuda(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const MSDeformAttnDims& dims);

std::vector<at::Tensor> ms_deform_attn_backward_cuda(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const at::Tensor& grad_output,
    const MSDeformAttnDims& dims);

// CUDART_VERSION the CUDA kernel was compiled with (e.g. 13000).
int cuda_runtime_version();
#endif

}  // namespace dvis
