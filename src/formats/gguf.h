// GgufFile: a validated, memory-mapped GGUF (v2 or v3) file: header, metadata key/values, tensor infos
// and the tensor data region. Everything in the file is untrusted: open() checks every count, length,
// offset and size against the bytes that are really there before trusting it, and nothing is allocated
// from an unchecked count. Metadata values point into the mapping (no copies): a GgufFile must outlive
// every GgufValue / string_view taken from it.
//
// Format (little-endian): "GGUF" u32 version u64 n_tensors u64 n_kv, n_kv x (string key, u32 type, value),
// n_tensors x (string name, u32 n_dims, u64 dims[n_dims] innermost first, u32 ggml_type, u64 offset),
// padding to general.alignment (default 32), tensor data. string = u64 length + bytes (no NUL).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/mapped_file.h"
#include "punica/status.h"

namespace punica {

// Metadata value types (gguf_type in ggml).
enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* gguf_type_name(GgufType t);

// Tensor storage types (ggml_type ids). Only the ids; sizes and names come from ggml_type_traits().
enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kIQ2_XXS = 16, kIQ2_XS = 17, kIQ3_XXS = 18, kIQ1_S = 19, kIQ4_NL = 20, kIQ3_S = 21, kIQ2_S = 22,
  kIQ4_XS = 23, kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kIQ1_M = 29, kBF16 = 30,
  kTQ1_0 = 34, kTQ2_0 = 35, kMXFP4 = 39,
};

struct GgmlTypeTraits {
  const char* name;       // "Q4_K"
  int64_t block_size;     // elements per block
  int64_t type_size;      // bytes per block
};
// nullptr for an id this build does not know (its byte size is then unknown too).
const GgmlTypeTraits* ggml_type_traits(uint32_t type_id);
std::string ggml_type_name(uint32_t type_id);  // "Q4_K", or "unknown(77)"

// One metadata value. Scalars are decoded; strings and arrays are views into the mapped file.
class GgufValue {
 public:
  GgufType type() const { return type_; }
  bool is_integer() const;   // any of u8..i64 (not bool)
  bool is_float() const { return type_ == GgufType::kF32 || type_ == GgufType::kF64; }

  // Scalars (valid only for the matching type(); callers check type() or use GgufFile::get_*).
  int64_t as_int() const { return i64_; }      // integers (u64 above INT64_MAX is rejected at open)
  double as_float() const { return f64_; }     // f32/f64
  bool as_bool() const { return i64_ != 0; }
  std::string_view as_string() const { return str_; }

  // Arrays.
  GgufType array_type() const { return elem_type_; }
  uint64_t array_size() const { return count_; }
  // Raw bytes of the array payload (after the element type and count).
  const uint8_t* array_data() const { return data_; }
  size_t array_bytes() const { return bytes_; }
  // Decodes one level of an array (works for every element type, nested arrays included). count() is
  // already validated against the file, so this allocates at most file-size-bounded memory.
  std::vector<GgufValue> array_items() const;

 private:
  friend class GgufParser;
  GgufType type_ = GgufType::kU8;
  int64_t i64_ = 0;
  double f64_ = 0;
  std::string_view str_;
  GgufType elem_type_ = GgufType::kU8;
  uint64_t count_ = 0;
  const uint8_t* data_ = nullptr;
  size_t bytes_ = 0;
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;   // GGUF order: innermost (contiguous) first, as in the file
  uint32_t type_id = 0;        // GgmlType id
  uint64_t offset = 0;         // relative to data_offset()
  uint64_t n_bytes = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  GgmlType type() const { return static_cast<GgmlType>(type_id); }
};

class GgufFile {
 public:
  static constexpr int kMaxDims = 4;
  static constexpr uint64_t kDefaultAlignment = 32;

  static Expected<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Parses bytes already in memory (tests, fuzzing). `name` names the source in messages. The bytes must
  // outlive the GgufFile.
  static Expected<std::unique_ptr<GgufFile>> parse(const uint8_t* data, size_t size, const std::string& name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }   // absolute file offset of tensor data

  // Metadata, in file order.
  const std::vector<GgufKeyValue>& metadata() const { return kvs_; }
  const GgufValue* find(std::string_view key) const;   // nullptr if absent

  // Typed getters: NotFound if absent, InvalidFile (naming the file, key, and found/expected type) if the
  // type does not fit. get_int accepts any integer type (and bool); get_float accepts f32/f64 and ints.
  Expected<std::string> get_string(std::string_view key) const;
  Expected<int64_t> get_int(std::string_view key) const;
  Expected<double> get_float(std::string_view key) const;
  Expected<bool> get_bool(std::string_view key) const;
  Expected<std::vector<std::string>> get_string_array(std::string_view key) const;
  // Zero-copy: views into the mapping (valid while this GgufFile lives). The fast path for big vocabularies.
  Expected<std::vector<std::string_view>> get_string_view_array(std::string_view key) const;
  Expected<std::vector<float>> get_float_array(std::string_view key) const;   // f32/f64 arrays
  Expected<std::vector<int64_t>> get_int_array(std::string_view key) const;   // any integer-type array

  // Tensors, in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapping (validated at open to lie inside the file).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return base_ + data_offset_ + t.offset; }

  // The mapped bytes (for callers that keep the file alive).
  const uint8_t* bytes() const { return base_; }
  size_t size() const { return size_; }

 private:
  friend class GgufParser;
  GgufFile() = default;
  Status type_error(std::string_view key, const GgufValue& v, const char* expected) const;

  std::string path_;
  std::shared_ptr<MappedFile> file_;   // null when parsed from caller-owned memory
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKeyValue> kvs_;
  std::unordered_map<std::string_view, size_t> kv_index_;       // keys point into kvs_[i].key
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;   // keys point into tensors_[i].name
};

// Fuzz entry point (also replayed by the corpus test): parses, and on success touches every value.
int fuzz_gguf_one_input(const uint8_t* data, size_t size);

}  // namespace punica
