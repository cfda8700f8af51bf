// Host-side launch helpers shared by the LoRA kernels (included by the .cu files only): one place for the
// launch configuration with Programmatic Dependent Launch and clusters, one for the choice of a template
// instance by activation dtype and by padded rank.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>
#include <type_traits>
#include <utility>

#include "backends/cuda/cuda_check.h"
#include "core/dtype.h"

namespace punica::cuda::lora_detail {

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when `pdl` (the kernel may start
// while the previous kernel in the stream still runs, and must griddepcontrol.wait before reading that
// kernel's outputs) and as clusters of `cluster_x` CTAs when cluster_x > 0. Errors name `name`.
template <typename... KernelArgs, typename... Args>
Status launch_kernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, bool pdl, int cluster_x,
                     cudaStream_t stream, const char* name, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  if (cluster_x > 0) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = static_cast<unsigned>(cluster_x);
    attr[n].val.clusterDim.y = 1;
    attr[n].val.clusterDim.z = 1;
    ++n;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
  return cuda_status(cudaGetLastError(), name);
}

// fn(T{}) with T = __half or __nv_bfloat16 for the activation dtype (the backend takes only these two).
template <typename Fn>
Status dispatch_dtype(DType dtype, Fn&& fn) {
  if (dtype == DType::kF16) return fn(__half{});
  return fn(__nv_bfloat16{});
}

// fn(std::integral_constant<int, RP>{}) for the padded rank rp: 16, 32, 64 or 128.
template <typename Fn>
Status dispatch_padded_rank(int rp, const char* op, Fn&& fn) {
  switch (rp) {
    case 16: return fn(std::integral_constant<int, 16>{});
    case 32: return fn(std::integral_constant<int, 32>{});
    case 64: return fn(std::integral_constant<int, 64>{});
    case 128: return fn(std::integral_constant<int, 128>{});
    default: return internal_error(std::string(op) + ": no kernel for padded rank " + std::to_string(rp));
  }
}

}  // namespace punica::cuda::lora_detail
