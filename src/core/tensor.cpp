#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace punica {

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (int k = 0; k < ndim; ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "] " + std::string(dtype_name(dtype));
}

void HostTensor::Free::operator()(void* p) const { std::free(p); }

HostTensor::HostTensor(DType t, std::vector<int64_t> shape) : dtype_(t), shape_(std::move(shape)) {
  size_t bytes = static_cast<size_t>(numel()) * dtype_size(t);
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded ? rounded : 64);
  mem_.reset(p);
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

TensorView HostTensor::view() const {
  TensorView v;
  v.data = mem_.get();
  v.dtype = dtype_;
  v.ndim = static_cast<int>(shape_.size());
  int64_t s = 1;
  for (int k = v.ndim - 1; k >= 0; --k) { v.shape[k] = shape_[k]; v.stride[k] = s; s *= shape_[k]; }
  return v;
}

}  // namespace punica
