#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/half.h"
#include "formats/json_nesting.h"

namespace punica {

namespace {

using nlohmann::json;

Status st_fail(const std::string& path, const std::string& msg) { return invalid_file(path + ": " + msg); }

// Reads a JSON integer that must be >= 0 (json may hold it as signed or unsigned).
bool json_to_u64(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

Status parse_tensor_entry(const std::string& path, const std::string& name, const json& e, uint64_t data_size,
                          SafetensorsTensor* t) {
  const std::string where = "tensor '" + name + "'";
  if (!e.is_object()) return st_fail(path, where + ": header entry is not an object");
  auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string()) return st_fail(path, where + ": missing string 'dtype'");
  t->name = name;
  t->dtype = dt->get<std::string>();
  const size_t esize = safetensors_dtype_size(t->dtype);
  if (esize == 0)
    return unsupported(path + ": " + where + ": dtype '" + t->dtype +
                       "' is not supported (expected F32, F16, BF16, F64, I64, I32, I16, I8, U8 or BOOL)");
  auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array()) return st_fail(path, where + ": missing array 'shape'");
  if (sh->size() > SafetensorsFile::kMaxDims)
    return st_fail(path, where + ": shape has " + std::to_string(sh->size()) + " dims, expected at most " +
                             std::to_string(SafetensorsFile::kMaxDims));
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    uint64_t v = 0;
    if (!json_to_u64(d, &v) || v > uint64_t(INT64_MAX))
      return st_fail(path, where + ": shape entries must be non-negative integers");
    if (v != 0 && numel > uint64_t(INT64_MAX) / v) return st_fail(path, where + ": shape product overflows");
    numel *= v;
    t->shape.push_back(static_cast<int64_t>(v));
  }
  auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !json_to_u64((*off)[0], &t->begin) ||
      !json_to_u64((*off)[1], &t->end))
    return st_fail(path, where + ": 'data_offsets' must be [begin, end] with non-negative integers");
  if (t->begin > t->end || t->end > data_size)
    return st_fail(path, where + ": data_offsets [" + std::to_string(t->begin) + ", " + std::to_string(t->end) +
                             "] lie outside the data region of " + std::to_string(data_size) + " bytes");
  if (numel > uint64_t(INT64_MAX) / esize || numel * esize != t->end - t->begin)
    return st_fail(path, where + ": shape x " + t->dtype + " needs " +
                             (numel > uint64_t(INT64_MAX) / esize ? std::string("too many")
                                                                  : std::to_string(numel * esize)) +
                             " bytes but data_offsets span " + std::to_string(t->end - t->begin));
  return {};
}

}  // namespace

size_t safetensors_dtype_size(std::string_view dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

Expected<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  PUNICA_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  static const uint8_t kEmpty[1] = {0};
  PUNICA_ASSIGN_OR_RETURN(auto f, parse(mf->data() ? mf->data() : kEmpty, mf->size(), path));
  f->file_ = std::move(mf);
  return f;
}

Expected<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(const uint8_t* data, size_t size,
                                                                  const std::string& path) {
  if (size < 8) return st_fail(path, "file is " + std::to_string(size) + " bytes, too short for a safetensors header");
  uint64_t n = 0;
  std::memcpy(&n, data, 8);
  if (n > kMaxHeaderBytes)
    return st_fail(path, "header length " + std::to_string(n) + " is above the limit of " +
                             std::to_string(kMaxHeaderBytes) + " bytes");
  if (n > size - 8)
    return st_fail(path, "header length " + std::to_string(n) + " runs past the end of the file (" +
                             std::to_string(size - 8) + " bytes after the length)");
  const char* hb = reinterpret_cast<const char*>(data + 8);
  PUNICA_RETURN_IF_ERROR(json_check_nesting(std::string_view(hb, n), path + ": header"));
  json header = json::parse(hb, hb + n, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return st_fail(path, "header is not valid JSON");
  if (!header.is_object()) return st_fail(path, "header JSON is not an object");

  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->data_ = data + 8 + n;
  f->data_size_ = size - 8 - n;
  f->tensors_.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;   // free-form strings; nothing we need
    SafetensorsTensor t;
    PUNICA_RETURN_IF_ERROR(parse_tensor_entry(path, it.key(), it.value(), f->data_size_, &t));
    f->index_.emplace(t.name, f->tensors_.size());
    f->tensors_.push_back(std::move(t));
  }
  std::vector<const SafetensorsTensor*> order;
  for (const auto& t : f->tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end)
      return st_fail(path, "tensor '" + order[i]->name + "' data [" + std::to_string(order[i]->begin) + ", " +
                               std::to_string(order[i]->end) + ") overlaps tensor '" + order[i - 1]->name +
                               "' [" + std::to_string(order[i - 1]->begin) + ", " +
                               std::to_string(order[i - 1]->end) + ")");
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status SafetensorsFile::read_f32(const SafetensorsTensor& t, float* out, int64_t numel) const {
  if (numel != t.numel())
    return invalid_argument(path_ + ": tensor '" + t.name + "': asked for " + std::to_string(numel) +
                            " elements, it has " + std::to_string(t.numel()));
  const uint8_t* p = tensor_data(t);
  const size_t n = static_cast<size_t>(numel);
  if (t.dtype == "F32") {
    if (n) std::memcpy(out, p, n * 4);
  } else if (t.dtype == "F16") {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = fp16_to_float(h);
    }
  } else if (t.dtype == "BF16") {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = bf16_to_float(h);
    }
  } else if (t.dtype == "F64") {
    for (size_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      out[i] = static_cast<float>(v);
    }
  } else {
    return unsupported(path_ + ": tensor '" + t.name + "': dtype " + t.dtype +
                       " cannot be read as weights (expected F32, F16, BF16 or F64)");
  }
  return {};
}

// ---- WeightSource over one or more files ----

namespace {

class SafetensorsWeightSource : public WeightSource {
 public:
  const std::string& path() const override { return path_; }
  std::vector<std::string> tensor_names() const override { return names_; }
  const TensorInfo* find(const std::string& hf_name) const override {
    auto it = entries_.find(hf_name);
    return it == entries_.end() ? nullptr : &it->second.info;
  }
  Status read_f32(const std::string& hf_name, float* out, int64_t numel) const override {
    auto it = entries_.find(hf_name);
    if (it == entries_.end()) return not_found(path_ + ": tensor '" + hf_name + "' is not in the model");
    return it->second.file->read_f32(*it->second.tensor, out, numel);
  }

  struct Entry {
    TensorInfo info;
    const SafetensorsFile* file = nullptr;
    const SafetensorsTensor* tensor = nullptr;
  };
  void add(const SafetensorsFile* f, const SafetensorsTensor* t) {
    Entry e;
    e.info.name = t->name;
    e.info.shape = t->shape;
    e.info.storage_type = t->dtype;
    e.file = f;
    e.tensor = t;
    names_.push_back(t->name);
    entries_.emplace(t->name, std::move(e));
  }

  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, Entry> entries_;
};

Expected<std::unique_ptr<WeightSource>> open_safetensors_index(const std::string& index_path) {
  PUNICA_ASSIGN_OR_RETURN(std::string text, read_text_file(index_path, 64u << 20));
  PUNICA_RETURN_IF_ERROR(json_check_nesting(text, index_path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return st_fail(index_path, "not a valid JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) return st_fail(index_path, "missing object 'weight_map'");
  const std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  auto src = std::make_unique<SafetensorsWeightSource>();
  src->path_ = index_path;
  std::map<std::string, const SafetensorsFile*> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string())
      return st_fail(index_path, "weight_map['" + it.key() + "'] is not a file name string");
    const std::string shard = it->get<std::string>();
    // Shards must sit next to the index: no directories, no "..", so a hostile index cannot reach out.
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
      return st_fail(index_path, "weight_map['" + it.key() + "']: shard name '" + shard +
                                     "' must be a plain file name in the same folder");
    if (!shards.count(shard)) {
      PUNICA_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open((dir / shard).string()));
      shards[shard] = f.get();
      src->files_.push_back(std::move(f));
    }
    const SafetensorsFile* f = shards[shard];
    const SafetensorsTensor* t = f->find(it.key());
    if (!t)
      return st_fail(index_path, "weight_map says tensor '" + it.key() + "' is in '" + shard +
                                     "', but that file has no such tensor");
    src->add(f, t);
  }
  return std::unique_ptr<WeightSource>(std::move(src));
}

}  // namespace

Expected<std::unique_ptr<WeightSource>> open_safetensors_weights(const std::string& path) {
  const std::string suffix = ".index.json";
  if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
    return open_safetensors_index(path);
  PUNICA_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(path));
  auto src = std::make_unique<SafetensorsWeightSource>();
  src->path_ = path;
  for (const auto& t : f->tensors()) src->add(f.get(), &t);
  src->files_.push_back(std::move(f));
  return std::unique_ptr<WeightSource>(std::move(src));
}

}  // namespace punica
