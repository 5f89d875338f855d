// Python bindings of dvis_cli._C: input checks and device dispatch for the deformable-attention kernels.
//
// Every check runs before a kernel touches memory, so bad input ends in a RuntimeError with a
// readable message, never in an out-of-bounds read.
#include <torch/extension.h>
#include <torch/version.h>

#include "ms_deform_attn.h"

#include <limits>
#include <string>
#include <vector>

namespace dvis {
namespace {

constexpr const char* kOp = "ms_deform_attn: ";

bool kernel_dtype_supported(const at::Tensor& value) {
  const auto dtype = value.scalar_type();
  if (dtype == at::kFloat || dtype == at::kDouble) {
    return true;
  }
  return value.is_cuda() && (dtype == at::kHalf || dtype == at::kBFloat16);
}

void check_like_value(const at::Tensor& value, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device() == value.device(), kOp, name, " is on ", t.device(), " but value is on ", value.device());
  TORCH_CHECK(
      t.scalar_type() == value.scalar_type(), kOp, name, " has dtype ", t.scalar_type(), " but value has dtype ",
      value.scalar_type());
}

void check_index(const at::Tensor& value, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device() == value.device(), kOp, name, " is on ", t.device(), " but value is on ", value.device());
  TORCH_CHECK(t.scalar_type() == at::kLong, kOp, name, " must be int64, got ", t.scalar_type());
}

MSDeformAttnDims check_inputs(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  TORCH_CHECK(value.dim() == 4, kOp, "value must be [N, S, M, Dh], got shape ", value.sizes());
  TORCH_CHECK(
      spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2, kOp, "spatial_shapes must be [L, 2], got shape ",
      spatial_shapes.sizes());
  TORCH_CHECK(level_start_index.dim() == 1, kOp, "level_start_index must be [L], got shape ", level_start_index.sizes());
  TORCH_CHECK(
      sampling_locations.dim() == 6 && sampling_locations.size(5) == 2, kOp,
      "sampling_locations must be [N, Lq, M, L, P, 2], got shape ", sampling_locations.sizes());
  TORCH_CHECK(
      attention_weights.dim() == 5, kOp, "attention_weights must be [N, Lq, M, L, P], got shape ",
      attention_weights.sizes());
  TORCH_CHECK(
      value.is_cpu() || value.is_cuda(), kOp, "no compiled kernel for device ", value.device(),
      " (use the PyTorch implementation)");
  TORCH_CHECK(
      kernel_dtype_supported(value), kOp, "no compiled kernel for dtype ", value.scalar_type(), " on ",
      value.device().type());
  check_like_value(value, sampling_locations, "sampling_locations");
  check_like_value(value, attention_weights, "attention_weights");
  check_index(value, spatial_shapes, "spatial_shapes");
  check_index(value, level_start_index, "level_start_index");

  MSDeformAttnDims d;
  d.batch = value.size(0);
  d.num_keys = value.size(1);
  d.num_heads = value.size(2);
  d.head_dim = value.size(3);
  d.num_queries = sampling_locations.size(1);
  d.num_levels = spatial_shapes.size(0);
  d.num_points = sampling_locations.size(4);

  const auto expect = [&](const at::Tensor& t, const char* name, std::vector<int64_t> want) {
    TORCH_CHECK(
        t.sizes() == at::IntArrayRef(want), kOp, name, " has shape ", t.sizes(), " but value [N, S, M, Dh] = ",
        value.sizes(), " and spatial_shapes [L, 2] = ", spatial_shapes.sizes(), " require ", at::IntArrayRef(want));
  };
  expect(level_start_index, "level_start_index", {d.num_levels});
  expect(sampling_locations, "sampling_locations", {d.batch, d.num_queries, d.num_heads, d.num_levels, d.num_points, 2});
  expect(attention_weights, "attention_weights", {d.batch, d.num_queries, d.num_heads, d.num_levels, d.num_points});

  // Level geometry: a tiny host copy (a device sync on CUDA), so that no kernel can read out of bounds.
  const auto shapes = spatial_shapes.to(at::kCPU).contiguous();
  const auto starts = level_start_index.to(at::kCPU).contiguous();
  const int64_t* hw = shapes.data_ptr<int64_t>();
  const int64_t* start = starts.data_ptr<int64_t>();
  constexpr int64_t kMaxSide = std::numeric_limits<int32_t>::max();
  int64_t total = 0;
  for (int64_t l = 0; l < d.num_levels; ++l) {
    const int64_t h = hw[2 * l], w = hw[2 * l + 1];
    TORCH_CHECK(
        h >= 1 && w >= 1 && h <= kMaxSide && w <= kMaxSide, kOp, "level ", l, " has spatial shape (", h, ", ", w,
        "); both sides must be positive");
    TORCH_CHECK(
        start[l] == total, kOp, "level_start_index[", l, "] is ", start[l], " but the levels before it hold ", total,
        " keys");
    total += h * w;
    TORCH_CHECK(total <= d.num_keys, kOp, "spatial_shapes hold more keys than value has (S = ", d.num_keys, ")");
  }
  TORCH_CHECK(
      total == d.num_keys, kOp, "spatial_shapes hold ", total, " keys but value has S = ", d.num_keys);
  return d;
}

// The inputs as the kernels take them: checked, and contiguous.
struct Prepared {
  MSDeformAttnDims dims;
  at::Tensor value, shapes, starts, loc, attn;
};

Prepared prepare(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  const auto dims = check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  return {dims, value.contiguous(), spatial_shapes.contiguous(), level_start_index.contiguous(),
          sampling_locations.contiguous(), attention_weights.contiguous()};
}

#ifndef DVIS_WITH_CUDA
[[noreturn]] void no_cuda_kernel() {
  TORCH_CHECK(false, kOp, "dvis_cli._C was built without CUDA; rebuild it with `dvis build-ops`");
}
#endif

at::Tensor forward(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  const auto in = prepare(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  if (in.value.is_cuda()) {
#ifdef DVIS_WITH_CUDA
    return ms_deform_attn_forward_cuda(in.value, in.shapes, in.starts, in.loc, in.attn, in.dims);
#else
    no_cuda_kernel();
#endif
  }
  return ms_deform_attn_forward_cpu(in.value, in.shapes, in.starts, in.loc, in.attn, in.dims);
}

std::vector<at::Tensor> backward(
    const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
    const at::Tensor& sampling_locations, const at::Tensor& attention_weights, const at::Tensor& grad_output) {
  const auto in = prepare(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
  const auto& d = in.dims;
  check_like_value(value, grad_output, "grad_output");
  TORCH_CHECK(
      grad_output.sizes() == at::IntArrayRef({d.batch, d.num_queries, d.num_heads * d.head_dim}), kOp,
      "grad_output has shape ", grad_output.sizes(), ", expected [N, Lq, M * Dh] = [", d.batch, ", ", d.num_queries,
      ", ", d.num_heads * d.head_dim, "]");
  const auto grad = grad_output.contiguous();
  if (in.value.is_cuda()) {
#ifdef DVIS_WITH_CUDA
    return ms_deform_attn_backward_cuda(in.value, in.shapes, in.starts, in.loc, in.attn, grad, d);
#else
    no_cuda_kernel();
#endif
  }
  return ms_deform_attn_backward_cpu(in.value, in.shapes, in.starts, in.loc, in.attn, grad, d);
}

bool with_cuda() {
#ifdef DVIS_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_version() {
#ifdef DVIS_WITH_CUDA
  return cuda_runtime_version();
#else
  return 0;
#endif
}

}  // namespace
}  // namespace dvis

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "dvis compiled ops: multi-scale deformable attention (CPU, and CUDA when built with it)";
  m.def(
      "ms_deform_attn_forward", &dvis::forward, "Multi-scale deformable attention, forward",
      pybind11::arg("value"), pybind11::arg("spatial_shapes"), pybind11::arg("level_start_index"),
      pybind11::arg("sampling_locations"), pybind11::arg("attention_weights"),
      pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def(
      "ms_deform_attn_backward", &dvis::backward,
      "Multi-scale deformable attention, backward: [grad_value, grad_sampling_locations, grad_attention_weights]",
      pybind11::arg("value"), pybind11::arg("spatial_shapes"), pybind11::arg("level_start_index"),
      pybind11::arg("sampling_locations"), pybind11::arg("attention_weights"), pybind11::arg("grad_output"),
      pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("with_cuda", &dvis::with_cuda, "Whether this build contains the CUDA kernel");
  m.def("cuda_version", &dvis::cuda_version, "CUDART_VERSION of the CUDA kernel (0 without CUDA)");
  m.attr("torch_version") = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
      std::to_string(TORCH_VERSION_PATCH);
}
