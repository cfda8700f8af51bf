// TensorView: a non-owning view (pointer, dtype, shape, strides in elements, device). Ops take views;
// ownership lives in Buffer (host) or the backend's allocations.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/assert.h"
#include "core/dtype.h"

namespace punica {

constexpr int kMaxDims = 4;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::kCpu;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> stride{};  // in elements

  TensorView() = default;
  TensorView(void* p, DType t, std::initializer_list<int64_t> dims, Device dev = Device::kCpu)
      : data(p), dtype(t), device(dev), ndim(static_cast<int>(dims.size())) {
    PUNICA_ASSERT(ndim <= kMaxDims);
    int i = 0;
    for (int64_t d : dims) shape[i++] = d;
    int64_t s = 1;
    for (int k = ndim - 1; k >= 0; --k) { stride[k] = s; s *= shape[k]; }
  }

  int64_t numel() const {
    int64_t n = 1;
    for (int k = 0; k < ndim; ++k) n *= shape[k];
    return n;
  }
  int64_t size(int dim) const { return shape[dim < 0 ? dim + ndim : dim]; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool is_contiguous() const {
    int64_t s = 1;
    for (int k = ndim - 1; k >= 0; --k) {
      if (shape[k] != 1 && stride[k] != s) return false;
      s *= shape[k];
    }
    return true;
  }
  template <typename T> T* ptr() const { return static_cast<T*>(data); }
  std::string shape_string() const;  // "[3, 4096] f32"
};

// An owning, 64-byte aligned host buffer of one dtype.
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType t, std::vector<int64_t> shape);
  TensorView view() const;
  template <typename T> T* data() const { return reinterpret_cast<T*>(mem_.get()); }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  DType dtype() const { return dtype_; }

 private:
  struct Free { void operator()(void* p) const; };
  std::unique_ptr<void, Free> mem_;
  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
};

}  // namespace punica
