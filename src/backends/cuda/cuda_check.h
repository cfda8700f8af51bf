// CUDA error checks that turn a failed runtime call into a Status naming the call, so that every CUDA call
// in the backend is checked and errors cross the module boundary as Status (DESIGN.md: never abort on them).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "punica/status.h"

namespace punica::cuda {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::ok();
  return internal_error(std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace punica::cuda

#define PUNICA_CUDA_RETURN_IF_ERROR(call) PUNICA_RETURN_IF_ERROR(::punica::cuda::cuda_status((call), #call))
