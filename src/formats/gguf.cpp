#include "formats/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace punica {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747u;  // "GGUF" little-endian
constexpr int kMaxArrayNesting = 8;             // bounds recursion on hostile nested arrays
constexpr uint64_t kMaxAlignment = 1u << 20;

struct TypeEntry {
  uint32_t id;
  GgmlTypeTraits traits;
};
// Sizes as in ggml (ggml.c type_traits) / gguf-py GGML_QUANT_SIZES.
constexpr TypeEntry kGgmlTypes[] = {
    {0, {"F32", 1, 4}},        {1, {"F16", 1, 2}},         {2, {"Q4_0", 32, 18}},
    {3, {"Q4_1", 32, 20}},     {6, {"Q5_0", 32, 22}},      {7, {"Q5_1", 32, 24}},
    {8, {"Q8_0", 32, 34}},     {9, {"Q8_1", 32, 40}},      {10, {"Q2_K", 256, 84}},
    {11, {"Q3_K", 256, 110}},  {12, {"Q4_K", 256, 144}},   {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}},  {15, {"Q8_K", 256, 292}},   {16, {"IQ2_XXS", 256, 66}},
    {17, {"IQ2_XS", 256, 74}}, {18, {"IQ3_XXS", 256, 98}}, {19, {"IQ1_S", 256, 50}},
    {20, {"IQ4_NL", 32, 18}},  {21, {"IQ3_S", 256, 110}},  {22, {"IQ2_S", 256, 82}},
    {23, {"IQ4_XS", 256, 136}}, {24, {"I8", 1, 1}},        {25, {"I16", 1, 2}},
    {26, {"I32", 1, 4}},       {27, {"I64", 1, 8}},        {28, {"F64", 1, 8}},
    {29, {"IQ1_M", 256, 56}},  {30, {"BF16", 1, 2}},       {34, {"TQ1_0", 256, 54}},
    {35, {"TQ2_0", 256, 66}},  {39, {"MXFP4", 32, 17}},
};

// Byte size of a fixed-size metadata scalar, 0 for string/array/unknown.
size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    default: return 0;
  }
}

bool gguf_type_valid(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

// Smallest encoding of one element of type t: bounds counts by the bytes left.
size_t gguf_min_size(GgufType t) {
  if (t == GgufType::kString) return 8;
  if (t == GgufType::kArray) return 12;
  return gguf_scalar_size(t);
}

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::kU8: return "uint8";
    case GgufType::kI8: return "int8";
    case GgufType::kU16: return "uint16";
    case GgufType::kI16: return "int16";
    case GgufType::kU32: return "uint32";
    case GgufType::kI32: return "int32";
    case GgufType::kF32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kU64: return "uint64";
    case GgufType::kI64: return "int64";
    case GgufType::kF64: return "float64";
  }
  return "unknown";
}

const GgmlTypeTraits* ggml_type_traits(uint32_t type_id) {
  for (const auto& e : kGgmlTypes)
    if (e.id == type_id) return &e.traits;
  return nullptr;
}

std::string ggml_type_name(uint32_t type_id) {
  const GgmlTypeTraits* t = ggml_type_traits(type_id);
  return t ? std::string(t->name) : "unknown(" + std::to_string(type_id) + ")";
}

bool GgufValue::is_integer() const {
  switch (type_) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kU16: case GgufType::kI16:
    case GgufType::kU32: case GgufType::kI32: case GgufType::kU64: case GgufType::kI64: return true;
    default: return false;
  }
}

// Reads and validates the file front to back. Every read is bounds-checked; errors name the file and the
// key or tensor being read.
class GgufParser {
 public:
  GgufParser(GgufFile& f, const uint8_t* data, size_t size) : f_(f), p_(data), size_(size) {}

  Status parse() {
    if (size_ < 24) return fail("file is " + std::to_string(size_) + " bytes, too short for a GGUF header (24)");
    uint32_t magic = load_le<uint32_t>(p_);
    if (magic != kGgufMagic) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", magic);
      return fail(std::string("bad magic ") + hex + ", expected \"GGUF\" (0x46554747)");
    }
    f_.version_ = load_le<uint32_t>(p_ + 4);
    if (f_.version_ != 2 && f_.version_ != 3)
      return unsupported(f_.path_ + ": GGUF version " + std::to_string(f_.version_) +
                         " is not supported (expected 2 or 3)");
    pos_ = 8;
    uint64_t n_tensors = 0, n_kv = 0;
    PUNICA_RETURN_IF_ERROR(read_u64(&n_tensors, "tensor count"));
    PUNICA_RETURN_IF_ERROR(read_u64(&n_kv, "metadata count"));
    // Smallest key/value: 8 (key length) + 4 (type) + 1 (u8 value). Smallest tensor info: 8 + 4 + 4 + 8.
    if (n_kv > remaining() / 13)
      return fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " +
                  std::to_string(remaining()) + " bytes left");
    if (n_tensors > remaining() / 24)
      return fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                  std::to_string(remaining()) + " bytes left");

    f_.kvs_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) PUNICA_RETURN_IF_ERROR(parse_kv(i));
    PUNICA_RETURN_IF_ERROR(read_alignment());

    f_.tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) PUNICA_RETURN_IF_ERROR(parse_tensor_info(i));

    // Data starts at the next multiple of the alignment after the tensor infos.
    uint64_t a = f_.alignment_;
    uint64_t data_offset = (pos_ + a - 1) / a * a;
    if (data_offset > size_ && n_tensors > 0)
      return fail("tensor data would start at offset " + std::to_string(data_offset) +
                  ", past the end of the file (size " + std::to_string(size_) + ")");
    f_.data_offset_ = std::min<uint64_t>(data_offset, size_);
    return check_tensor_ranges();
  }

 private:
  Status fail(const std::string& msg) const { return invalid_file(f_.path_ + ": " + msg); }
  size_t remaining() const { return size_ - pos_; }

  Status need(size_t n, const std::string& what) const {
    if (n > remaining())
      return fail("truncated: " + what + " needs " + std::to_string(n) + " bytes at offset " +
                  std::to_string(pos_) + ", only " + std::to_string(remaining()) + " left");
    return {};
  }
  Status read_u32(uint32_t* v, const std::string& what) {
    PUNICA_RETURN_IF_ERROR(need(4, what));
    *v = load_le<uint32_t>(p_ + pos_);
    pos_ += 4;
    return {};
  }
  Status read_u64(uint64_t* v, const std::string& what) {
    PUNICA_RETURN_IF_ERROR(need(8, what));
    *v = load_le<uint64_t>(p_ + pos_);
    pos_ += 8;
    return {};
  }
  Status read_string(std::string_view* s, const std::string& what) {
    uint64_t len = 0;
    PUNICA_RETURN_IF_ERROR(read_u64(&len, what + " length"));
    if (len > remaining())
      return fail(what + ": string length " + std::to_string(len) + " at offset " + std::to_string(pos_ - 8) +
                  " runs past the end of the file (" + std::to_string(remaining()) + " bytes left)");
    *s = std::string_view(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return {};
  }

  Status parse_kv(uint64_t index) {
    std::string_view key;
    PUNICA_RETURN_IF_ERROR(read_string(&key, "metadata key #" + std::to_string(index)));
    if (key.empty()) return fail("metadata key #" + std::to_string(index) + " is empty");
    const std::string where = "metadata key '" + std::string(key) + "'";
    if (f_.kv_index_.count(key)) return fail(where + " appears twice");
    uint32_t type = 0;
    PUNICA_RETURN_IF_ERROR(read_u32(&type, where + " type"));
    GgufValue v;
    PUNICA_RETURN_IF_ERROR(parse_value(type, &v, where, 0));
    f_.kv_index_.emplace(key, f_.kvs_.size());
    f_.kvs_.push_back({std::string(key), v});
    return {};
  }

  Status parse_value(uint32_t type, GgufValue* v, const std::string& where, int depth) {
    if (!gguf_type_valid(type)) return fail(where + ": unknown value type " + std::to_string(type));
    v->type_ = static_cast<GgufType>(type);
    switch (v->type_) {
      case GgufType::kString:
        return read_string(&v->str_, where);
      case GgufType::kArray:
        return parse_array(v, where, depth);
      default:
        break;
    }
    const size_t n = gguf_scalar_size(v->type_);
    PUNICA_RETURN_IF_ERROR(need(n, where + " value"));
    decode_scalar(v, p_ + pos_);
    pos_ += n;
    if (v->type_ == GgufType::kU64 && load_le<uint64_t>(p_ + pos_ - 8) > uint64_t(INT64_MAX))
      return fail(where + ": uint64 value " + std::to_string(load_le<uint64_t>(p_ + pos_ - 8)) +
                  " is out of range (at most 2^63-1)");
    return {};
  }

 public:
  static void decode_scalar(GgufValue* v, const uint8_t* q) {
    switch (v->type_) {
      case GgufType::kU8: v->i64_ = q[0]; break;
      case GgufType::kI8: v->i64_ = static_cast<int8_t>(q[0]); break;
      case GgufType::kBool: v->i64_ = q[0] != 0; break;
      case GgufType::kU16: v->i64_ = load_le<uint16_t>(q); break;
      case GgufType::kI16: v->i64_ = load_le<int16_t>(q); break;
      case GgufType::kU32: v->i64_ = load_le<uint32_t>(q); break;
      case GgufType::kI32: v->i64_ = load_le<int32_t>(q); break;
      case GgufType::kU64: v->i64_ = static_cast<int64_t>(load_le<uint64_t>(q)); break;
      case GgufType::kI64: v->i64_ = load_le<int64_t>(q); break;
      case GgufType::kF32: v->f64_ = load_le<float>(q); break;
      case GgufType::kF64: v->f64_ = load_le<double>(q); break;
      default: break;
    }
  }

 private:
  Status parse_array(GgufValue* v, const std::string& where, int depth) {
    if (depth >= kMaxArrayNesting)
      return fail(where + ": arrays nested deeper than " + std::to_string(kMaxArrayNesting));
    uint32_t elem = 0;
    uint64_t count = 0;
    PUNICA_RETURN_IF_ERROR(read_u32(&elem, where + " array type"));
    PUNICA_RETURN_IF_ERROR(read_u64(&count, where + " array length"));
    if (!gguf_type_valid(elem)) return fail(where + ": unknown array element type " + std::to_string(elem));
    v->elem_type_ = static_cast<GgufType>(elem);
    v->count_ = count;
    v->data_ = p_ + pos_;
    const size_t min_size = gguf_min_size(v->elem_type_);
    if (count > remaining() / min_size)
      return fail(where + ": array of " + std::to_string(count) + " " + gguf_type_name(v->elem_type_) +
                  " cannot fit in the " + std::to_string(remaining()) + " bytes left");
    const size_t start = pos_;
    if (v->elem_type_ == GgufType::kString) {
      // Walk the strings once so that readers can trust every length later.
      for (uint64_t i = 0; i < count; ++i) {
        if (remaining() < 8) return fail(where + ": truncated at string element " + std::to_string(i));
        uint64_t len = load_le<uint64_t>(p_ + pos_);
        pos_ += 8;
        if (len > remaining())
          return fail(where + ": string element " + std::to_string(i) + " length " + std::to_string(len) +
                      " runs past the end of the file");
        pos_ += len;
      }
    } else if (v->elem_type_ == GgufType::kArray) {
      for (uint64_t i = 0; i < count; ++i) {
        GgufValue item;
        item.type_ = GgufType::kArray;
        PUNICA_RETURN_IF_ERROR(parse_array(&item, where + "[" + std::to_string(i) + "]", depth + 1));
      }
    } else {
      const size_t n = count * min_size;   // bounded by remaining() above
      if (v->elem_type_ == GgufType::kU64) {
        for (uint64_t i = 0; i < count; ++i)
          if (load_le<uint64_t>(p_ + pos_ + i * 8) > uint64_t(INT64_MAX))
            return fail(where + ": uint64 element " + std::to_string(i) + " is out of range (at most 2^63-1)");
      }
      pos_ += n;
    }
    v->bytes_ = pos_ - start;
    return {};
  }

  Status read_alignment() {
    const GgufValue* a = f_.find("general.alignment");
    if (!a) return {};
    if (!a->is_integer())
      return fail(std::string("metadata key 'general.alignment': expected an integer, found ") +
                  gguf_type_name(a->type()));
    int64_t v = a->as_int();
    if (v <= 0 || (v & (v - 1)) != 0 || uint64_t(v) > kMaxAlignment)
      return fail("metadata key 'general.alignment': " + std::to_string(v) +
                  " is not a power of two in [1, " + std::to_string(kMaxAlignment) + "]");
    f_.alignment_ = static_cast<uint64_t>(v);
    return {};
  }

  Status parse_tensor_info(uint64_t index) {
    std::string_view name;
    PUNICA_RETURN_IF_ERROR(read_string(&name, "tensor info #" + std::to_string(index) + " name"));
    const std::string where = "tensor '" + std::string(name) + "'";
    if (name.empty()) return fail("tensor info #" + std::to_string(index) + " has an empty name");
    if (f_.tensor_index_.count(name)) return fail(where + " appears twice");
    uint32_t n_dims = 0;
    PUNICA_RETURN_IF_ERROR(read_u32(&n_dims, where + " n_dims"));
    if (n_dims == 0 || n_dims > GgufFile::kMaxDims)
      return fail(where + ": n_dims " + std::to_string(n_dims) + ", expected 1.." +
                  std::to_string(GgufFile::kMaxDims));
    GgufTensorInfo t;
    t.name = std::string(name);
    t.dims.resize(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      PUNICA_RETURN_IF_ERROR(read_u64(&dim, where + " dims"));
      // ggml allows 0-sized dims in principle, but no model tensor has one; reject so numel > 0.
      if (dim == 0 || dim > uint64_t(INT64_MAX))
        return fail(where + ": dimension " + std::to_string(d) + " is " + std::to_string(dim) +
                    ", expected > 0");
      if (numel > uint64_t(INT64_MAX) / dim)
        return fail(where + ": element count overflows (dims too large)");
      numel *= dim;
      t.dims[d] = static_cast<int64_t>(dim);
    }
    PUNICA_RETURN_IF_ERROR(read_u32(&t.type_id, where + " type"));
    PUNICA_RETURN_IF_ERROR(read_u64(&t.offset, where + " offset"));
    const GgmlTypeTraits* tr = ggml_type_traits(t.type_id);
    if (!tr)
      return unsupported(f_.path_ + ": " + where + ": ggml type " + std::to_string(t.type_id) +
                         " is unknown to this build");
    if (t.dims[0] % tr->block_size != 0)
      return fail(where + ": row length " + std::to_string(t.dims[0]) + " is not a multiple of the " +
                  tr->name + " block size " + std::to_string(tr->block_size));
    const uint64_t blocks = numel / tr->block_size;
    if (blocks > uint64_t(INT64_MAX) / tr->type_size)
      return fail(where + ": byte size overflows");
    t.n_bytes = blocks * tr->type_size;
    if (t.n_bytes > size_)   // early, before alignment is known: cannot fit in the file at all
      return fail(where + ": needs " + std::to_string(t.n_bytes) + " bytes, more than the file size " +
                  std::to_string(size_));
    if (t.offset % f_.alignment_ != 0)
      return fail(where + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                  std::to_string(f_.alignment_));
    f_.tensor_index_.emplace(name, f_.tensors_.size());
    f_.tensors_.push_back(std::move(t));
    return {};
  }

  Status check_tensor_ranges() {
    const uint64_t data_size = size_ - f_.data_offset_;
    std::vector<size_t> order(f_.tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (const auto& t : f_.tensors_) {
      if (t.offset > data_size || t.n_bytes > data_size - t.offset)
        return fail("tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", " +
                    std::to_string(t.offset + t.n_bytes) + ") relative to the data start " +
                    std::to_string(f_.data_offset_) + " runs past the end of the file (data region is " +
                    std::to_string(data_size) + " bytes)");
    }
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return f_.tensors_[a].offset < f_.tensors_[b].offset; });
    for (size_t i = 1; i < order.size(); ++i) {
      const auto& prev = f_.tensors_[order[i - 1]];
      const auto& cur = f_.tensors_[order[i]];
      if (cur.offset < prev.offset + prev.n_bytes)
        return fail("tensor '" + cur.name + "' data at offset " + std::to_string(cur.offset) +
                    " overlaps tensor '" + prev.name + "' [" + std::to_string(prev.offset) + ", " +
                    std::to_string(prev.offset + prev.n_bytes) + ")");
    }
    return {};
  }

  GgufFile& f_;
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
};

std::vector<GgufValue> GgufValue::array_items() const {
  std::vector<GgufValue> out;
  if (type_ != GgufType::kArray) return out;
  out.reserve(count_);
  const uint8_t* q = data_;
  for (uint64_t i = 0; i < count_; ++i) {
    GgufValue v;
    v.type_ = elem_type_;
    if (elem_type_ == GgufType::kString) {
      uint64_t len = load_le<uint64_t>(q);
      v.str_ = std::string_view(reinterpret_cast<const char*>(q + 8), len);
      q += 8 + len;
    } else if (elem_type_ == GgufType::kArray) {
      // Validated at open: re-walk the nested header to find this item's extent.
      v.elem_type_ = static_cast<GgufType>(load_le<uint32_t>(q));
      v.count_ = load_le<uint64_t>(q + 4);
      v.data_ = q + 12;
      const uint8_t* r = v.data_;
      struct Walker {
        static const uint8_t* skip(const uint8_t* r, GgufType t, uint64_t n) {
          if (t == GgufType::kString) {
            for (uint64_t k = 0; k < n; ++k) r += 8 + load_le<uint64_t>(r);
            return r;
          }
          if (t == GgufType::kArray) {
            for (uint64_t k = 0; k < n; ++k) {
              auto et = static_cast<GgufType>(load_le<uint32_t>(r));
              uint64_t c = load_le<uint64_t>(r + 4);
              r = skip(r + 12, et, c);
            }
            return r;
          }
          return r + n * gguf_scalar_size(t);
        }
      };
      r = Walker::skip(r, v.elem_type_, v.count_);
      v.bytes_ = static_cast<size_t>(r - v.data_);
      q = r;
    } else {
      GgufParser::decode_scalar(&v, q);
      q += gguf_scalar_size(elem_type_);
    }
    out.push_back(v);
  }
  return out;
}


// ---- GgufFile ----

Expected<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  PUNICA_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  const uint8_t* data = mf->data();
  size_t size = mf->size();
  static const uint8_t kEmpty[1] = {0};
  PUNICA_ASSIGN_OR_RETURN(auto f, parse(data ? data : kEmpty, size, path));
  f->file_ = std::move(mf);
  return f;
}

Expected<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  f->base_ = data;
  f->size_ = size;
  GgufParser parser(*f, data, size);
  PUNICA_RETURN_IF_ERROR(parser.parse());
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Status GgufFile::type_error(std::string_view key, const GgufValue& v, const char* expected) const {
  std::string found = gguf_type_name(v.type());
  if (v.type() == GgufType::kArray) found += std::string(" of ") + gguf_type_name(v.array_type());
  return invalid_file(path_ + ": metadata key '" + std::string(key) + "': expected " + expected + ", found " +
                      found);
}

namespace {
Status gguf_missing(const std::string& path, std::string_view key) {
  return not_found(path + ": metadata key '" + std::string(key) + "' is missing");
}
}  // namespace

Expected<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return gguf_missing(path_, key);
  if (v->type() != GgufType::kString) return type_error(key, *v, "a string");
  return std::string(v->as_string());
}

Expected<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return gguf_missing(path_, key);
  if (!v->is_integer() && v->type() != GgufType::kBool) return type_error(key, *v, "an integer");
  return v->as_int();
}

Expected<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return gguf_missing(path_, key);
  if (v->is_float()) return v->as_float();
  if (v->is_integer()) return static_cast<double>(v->as_int());
  return type_error(key, *v, "a number");
}

Expected<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return gguf_missing(path_, key);
  if (v->type() != GgufType::kBool && !v->is_integer()) return type_error(key, *v, "a bool");
  return v->as_int() != 0;
}

Expected<std::vector<std::string_view>> GgufFile::get_string_view_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return gguf_missing(path_, key);
  if (v->type() != GgufType::kArray || v->array_type() != GgufType::kString)
    return type_error(key, *v, "an array of string");
  std::vector<std::string_view> out;
  out.reserve(v->array_size());   // validated at open: each element takes >= 8 file bytes
  const uint8_t* q = v->array_data();
  for (uint64_t i = 0; i < v->array_size(); ++i) {
    uint64_t len = load_le<uint64_t>(q);
    out.emplace_back(reinterpret_cast<const char*>(q + 8), len);
    q += 8 + len;
  }
  return out;
}

Expected<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  PUNICA_ASSIGN_OR_RETURN(auto views, get_string_view_array(key));
  std::vector<std::string> out;
  out.reserve(views.size());
  for (auto s : views) out.emplace_back(s);
  return out;
}

Expected<std::vector<float>> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return gguf_missing(path_, key);
  if (v->type() != GgufType::kArray || (v->array_type() != GgufType::kF32 && v->array_type() != GgufType::kF64))
    return type_error(key, *v, "an array of float32 or float64");
  std::vector<float> out(v->array_size());
  const uint8_t* q = v->array_data();
  if (v->array_type() == GgufType::kF32) {
    if (!out.empty()) std::memcpy(out.data(), q, out.size() * 4);
  } else {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(load_le<double>(q + 8 * i));
  }
  return out;
}

Expected<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return gguf_missing(path_, key);
  if (v->type() != GgufType::kArray) return type_error(key, *v, "an array of integers");
  const GgufType et = v->array_type();
  const size_t es = gguf_scalar_size(et);
  const bool is_int = et != GgufType::kF32 && et != GgufType::kF64 && es != 0;
  if (!is_int) return type_error(key, *v, "an array of integers");
  std::vector<int64_t> out(v->array_size());
  const uint8_t* q = v->array_data();
  for (size_t i = 0; i < out.size(); ++i, q += es) {
    switch (et) {
      case GgufType::kU8: case GgufType::kBool: out[i] = q[0]; break;
      case GgufType::kI8: out[i] = static_cast<int8_t>(q[0]); break;
      case GgufType::kU16: out[i] = load_le<uint16_t>(q); break;
      case GgufType::kI16: out[i] = load_le<int16_t>(q); break;
      case GgufType::kU32: out[i] = load_le<uint32_t>(q); break;
      case GgufType::kI32: out[i] = load_le<int32_t>(q); break;
      case GgufType::kU64: out[i] = static_cast<int64_t>(load_le<uint64_t>(q)); break;
      case GgufType::kI64: out[i] = load_le<int64_t>(q); break;
      default: break;
    }
  }
  return out;
}

}  // namespace punica
