// Helpers for the format tests: write bytes to a temp file, build GGUF and safetensors files field by field
// (so that a test can corrupt exactly one field), and check an error message's parts.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "punica/status.h"

namespace punica::test {

inline std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/" + name; }

inline std::string write_temp(const std::string& name, const std::vector<uint8_t>& bytes) {
  std::string p = temp_path(name);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return p;
}

inline std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Expects an error status whose message contains every part.
inline ::testing::AssertionResult error_mentions(const Status& st, std::initializer_list<std::string> parts) {
  if (st.is_ok()) return ::testing::AssertionFailure() << "expected an error, got OK";
  for (const auto& p : parts)
    if (st.message().find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "message \"" << st.message() << "\" does not mention \"" << p << "\"";
  return ::testing::AssertionSuccess();
}

// Little-endian byte writer.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::vector<uint8_t>& v) {
    b.insert(b.end(), v.begin(), v.end());
    return *this;
  }
};

// A GGUF file assembled from parts. Metadata values are pre-encoded (type + payload) so tests can write
// anything, malformed included.
struct GgufBuilder {
  struct Kv {
    std::string key;
    uint32_t type;
    std::vector<uint8_t> payload;
  };
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    uint64_t offset;
    std::vector<uint8_t> data;   // written at offset (relative to the data start)
  };
  uint32_t version = 3;
  uint32_t magic = 0x46554747u;
  uint64_t alignment = 32;
  std::vector<Kv> kvs;
  std::vector<Tensor> tensors;

  GgufBuilder& kv_u32(const std::string& k, uint32_t v) { kvs.push_back({k, 4, Bytes().put(v).b}); return *this; }
  GgufBuilder& kv_f32(const std::string& k, float v) { kvs.push_back({k, 6, Bytes().put(v).b}); return *this; }
  GgufBuilder& kv_str(const std::string& k, const std::string& v) { kvs.push_back({k, 8, Bytes().str(v).b}); return *this; }
  GgufBuilder& kv_str_array(const std::string& k, const std::vector<std::string>& v) {
    Bytes p;
    p.put<uint32_t>(8).put<uint64_t>(v.size());
    for (const auto& s : v) p.str(s);
    kvs.push_back({k, 9, p.b});
    return *this;
  }
  // A tensor placed after the previous one (aligned), filled with `fill` bytes.
  GgufBuilder& tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, size_t n_bytes,
                      uint8_t fill = 0) {
    uint64_t off = 0;
    if (!tensors.empty()) {
      const auto& p = tensors.back();
      off = (p.offset + p.data.size() + alignment - 1) / alignment * alignment;
    }
    tensors.push_back({name, std::move(dims), type, off, std::vector<uint8_t>(n_bytes, fill)});
    return *this;
  }

  std::vector<uint8_t> build() const {
    Bytes o;
    o.put(magic).put(version).put<uint64_t>(tensors.size()).put<uint64_t>(kvs.size());
    for (const auto& kv : kvs) {
      o.str(kv.key).put(kv.type);
      o.raw(kv.payload);
    }
    for (const auto& t : tensors) {
      o.str(t.name).put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
      for (auto d : t.dims) o.put(d);
      o.put(t.type).put(t.offset);
    }
    while (o.b.size() % alignment) o.b.push_back(0);
    const size_t data_start = o.b.size();
    for (const auto& t : tensors) {
      if (o.b.size() < data_start + t.offset + t.data.size()) o.b.resize(data_start + t.offset + t.data.size(), 0);
      std::memcpy(o.b.data() + data_start + t.offset, t.data.data(), t.data.size());
    }
    return o.b;
  }
};

}  // namespace punica::test
