// parse_hf_config: Hugging Face config.json -> ModelConfig, for llama, mistral and qwen2. Accepts the
// classic rope keys (rope_theta + rope_scaling) and transformers 5's rope_parameters, which may also be
// a map from layer type ("full_attention", ...) to parameters.
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/assert.h"
#include "formats/json_nesting.h"
#include "formats/model_config.h"

namespace punica {

namespace {

using nlohmann::json;

// Sane upper limits: far above any Llama-family model, low enough that a hostile value cannot make a
// caller allocate absurd memory from it.
constexpr int64_t kMaxHidden = 1 << 16;
constexpr int64_t kMaxIntermediate = 1 << 20;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 1024;
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int64_t kMaxPositions = int64_t{1} << 26;

class ConfigReader {
 public:
  ConfigReader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  Status fail(const std::string& key, const std::string& msg) const {
    return invalid_file(source_ + ": key '" + key + "': " + msg);
  }
  const json* get(const json& obj, const std::string& key) const {
    auto it = obj.find(key);
    return (it == obj.end() || it->is_null()) ? nullptr : &*it;
  }

  // An integer in [lo, hi]; `dflt` when absent or null (nullopt: the key is required).
  Expected<int64_t> int_in(const json& obj, const std::string& key, int64_t lo, int64_t hi,
                           std::optional<int64_t> dflt, const std::string& prefix = "") const {
    const json* v = get(obj, key);
    if (!v) {
      if (dflt) return *dflt;
      return fail(prefix + key, "is missing (expected an integer in [" + std::to_string(lo) + ", " +
                                    std::to_string(hi) + "])");
    }
    int64_t x = 0;
    if (v->is_number_integer() && !(v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))) {
      x = v->get<int64_t>();
    } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
               v->get<double>() == std::floor(v->get<double>()) && std::fabs(v->get<double>()) < 9e15) {
      x = static_cast<int64_t>(v->get<double>());   // e.g. 4096.0 written by some tools
    } else {
      return fail(prefix + key, "expected an integer, found " + std::string(v->type_name()));
    }
    if (x < lo || x > hi)
      return fail(prefix + key, std::to_string(x) + " is out of range (expected " + std::to_string(lo) + ".." +
                                    std::to_string(hi) + ")");
    return x;
  }

  // A finite number in (lo, hi]; `dflt` when absent or null.
  Expected<double> num_in(const json& obj, const std::string& key, double lo, double hi,
                          std::optional<double> dflt, const std::string& prefix = "") const {
    const json* v = get(obj, key);
    if (!v) {
      if (dflt) return *dflt;
      return fail(prefix + key, "is missing (expected a number)");
    }
    if (!v->is_number()) return fail(prefix + key, "expected a number, found " + std::string(v->type_name()));
    double x = v->get<double>();
    if (!std::isfinite(x) || x <= lo || x > hi)
      return fail(prefix + key, std::to_string(x) + " is out of range (expected > " + std::to_string(lo) +
                                    " and <= " + std::to_string(hi) + ")");
    return x;
  }

  Expected<bool> boolean(const json& obj, const std::string& key, bool dflt) const {
    const json* v = get(obj, key);
    if (!v) return dflt;
    if (!v->is_boolean()) return fail(key, "expected true or false, found " + std::string(v->type_name()));
    return v->get<bool>();
  }

  // rope_scaling / rope_parameters object -> RopeScaling (+ rope_theta if the object carries it).
  Status rope(const json& r, const std::string& prefix, ModelConfig* c) const {
    if (!r.is_object()) return fail(prefix, "expected an object or null");
    const json* t = get(r, "rope_type");
    if (!t) t = get(r, "type");
    std::string type = "default";
    if (t) {
      if (!t->is_string()) return fail(prefix + ".rope_type", "expected a string");
      type = t->get<std::string>();
    }
    if (get(r, "rope_theta")) {
      PUNICA_ASSIGN_OR_RETURN(c->rope_theta, num_in(r, "rope_theta", 0.0, 1e12, std::nullopt, prefix + "."));
    }
    RopeScaling s;
    if (type == "default") {
      c->rope_scaling = s;
      return {};
    }
    const std::string p = prefix + ".";
    if (type == "linear") {
      s.type = RopeScalingType::kLinear;
    } else if (type == "dynamic") {
      s.type = RopeScalingType::kDynamic;
    } else if (type == "llama3") {
      s.type = RopeScalingType::kLlama3;
    } else {
      return unsupported(source_ + ": key '" + prefix + ".rope_type': '" + type +
                         "' is not supported (expected default, linear, dynamic or llama3)");
    }
    PUNICA_ASSIGN_OR_RETURN(s.factor, num_in(r, "factor", 0.0, 1e6, std::nullopt, p));
    if (s.type == RopeScalingType::kLlama3) {
      PUNICA_ASSIGN_OR_RETURN(s.low_freq_factor, num_in(r, "low_freq_factor", 0.0, 1e6, std::nullopt, p));
      PUNICA_ASSIGN_OR_RETURN(s.high_freq_factor, num_in(r, "high_freq_factor", 0.0, 1e6, std::nullopt, p));
      if (!(s.high_freq_factor > s.low_freq_factor))
        return fail(p + "high_freq_factor", "must be larger than low_freq_factor");
      PUNICA_ASSIGN_OR_RETURN(s.original_max_position_embeddings,
                              int_in(r, "original_max_position_embeddings", 1, kMaxPositions, std::nullopt, p));
    } else if (get(r, "original_max_position_embeddings")) {
      PUNICA_ASSIGN_OR_RETURN(s.original_max_position_embeddings,
                              int_in(r, "original_max_position_embeddings", 1, kMaxPositions, std::nullopt, p));
    }
    c->rope_scaling = s;
    return {};
  }

  // rope_parameters may be per layer type: {"full_attention": {...}, "sliding_attention": {...}}.
  Status rope_parameters(const json& r, ModelConfig* c) const {
    const std::string key = "rope_parameters";
    if (!r.is_object()) return fail(key, "expected an object");
    bool nested = !r.empty();
    for (auto it = r.begin(); it != r.end(); ++it) nested = nested && it->is_object();
    if (!nested) return rope(r, key, c);
    auto full = r.find("full_attention");
    if (full != r.end()) return rope(*full, key + ".full_attention", c);
    // Every layer uses the same parameters: any entry will do. Otherwise this model mixes rope kinds.
    for (auto it = r.begin(); it != r.end(); ++it)
      if (*it != *r.begin()) return unsupported(source_ + ": key 'rope_parameters': per-layer-type rope "
                                                          "parameters differ, which this runtime does not model");
    return rope(*r.begin(), key + "." + r.begin().key(), c);
  }

  Status token_ids(ModelConfig* c) const {
    PUNICA_ASSIGN_OR_RETURN(int64_t bos, int_in(j_, "bos_token_id", 0, c->vocab_size - 1, -1));
    if (bos >= 0) c->bos_token_id = bos;
    const json* e = get(j_, "eos_token_id");
    if (!e) return {};
    if (e->is_array()) {
      if (e->size() > 64) return fail("eos_token_id", "has " + std::to_string(e->size()) + " entries (at most 64)");
      for (size_t i = 0; i < e->size(); ++i) {
        json one = json::object({{"eos_token_id", (*e)[i]}});
        PUNICA_ASSIGN_OR_RETURN(int64_t id, int_in(one, "eos_token_id", 0, c->vocab_size - 1, std::nullopt));
        c->eos_token_ids.push_back(id);
      }
      return {};
    }
    PUNICA_ASSIGN_OR_RETURN(int64_t id, int_in(j_, "eos_token_id", 0, c->vocab_size - 1, std::nullopt));
    c->eos_token_ids.push_back(id);
    return {};
  }

  const json& j_;
  std::string source_;
};

Expected<ModelConfig> parse_hf_config_json(const json& j, const std::string& source) {
  if (!j.is_object()) return invalid_file(source + ": config is not a JSON object");
  ConfigReader r(j, source);
  ModelConfig c;
  const json* mt = r.get(j, "model_type");
  if (!mt || !mt->is_string()) return r.fail("model_type", "is missing or not a string");
  c.architecture = mt->get<std::string>();
  if (c.architecture != "llama" && c.architecture != "mistral" && c.architecture != "qwen2")
    return unsupported(source + ": key 'model_type': '" + c.architecture +
                       "' is not supported (expected llama, mistral or qwen2)");
  const bool qwen2 = c.architecture == "qwen2";
  const int64_t default_positions = c.architecture == "llama" ? 2048 : 32768;

  PUNICA_ASSIGN_OR_RETURN(c.vocab_size, r.int_in(j, "vocab_size", 1, kMaxVocab, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.hidden_size, r.int_in(j, "hidden_size", 1, kMaxHidden, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.intermediate_size, r.int_in(j, "intermediate_size", 1, kMaxIntermediate, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.num_hidden_layers, r.int_in(j, "num_hidden_layers", 1, kMaxLayers, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.num_attention_heads, r.int_in(j, "num_attention_heads", 1, kMaxHeads, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.num_key_value_heads,
                          r.int_in(j, "num_key_value_heads", 1, kMaxHeads, c.num_attention_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return r.fail("num_key_value_heads", std::to_string(c.num_key_value_heads) +
                                             " does not divide num_attention_heads " +
                                             std::to_string(c.num_attention_heads));
  if (!r.get(j, "head_dim") && c.hidden_size % c.num_attention_heads != 0)
    return r.fail("num_attention_heads", std::to_string(c.num_attention_heads) + " does not divide hidden_size " +
                                             std::to_string(c.hidden_size) + " (and no head_dim is given)");
  PUNICA_ASSIGN_OR_RETURN(c.head_dim,
                          r.int_in(j, "head_dim", 1, kMaxHeadDim, c.hidden_size / c.num_attention_heads));
  if (c.head_dim % 2 != 0) return r.fail("head_dim", std::to_string(c.head_dim) + " must be even for RoPE");
  PUNICA_ASSIGN_OR_RETURN(c.max_position_embeddings,
                          r.int_in(j, "max_position_embeddings", 1, kMaxPositions, default_positions));
  PUNICA_ASSIGN_OR_RETURN(c.rms_norm_eps, r.num_in(j, "rms_norm_eps", 0.0, 1.0, 1e-6));
  PUNICA_ASSIGN_OR_RETURN(c.tie_word_embeddings, r.boolean(j, "tie_word_embeddings", false));
  PUNICA_ASSIGN_OR_RETURN(c.attention_bias, r.boolean(j, "attention_bias", qwen2));
  PUNICA_ASSIGN_OR_RETURN(c.rope_theta, r.num_in(j, "rope_theta", 0.0, 1e12, 10000.0));
  if (const json* rs = r.get(j, "rope_scaling")) PUNICA_RETURN_IF_ERROR(r.rope(*rs, "rope_scaling", &c));
  if (const json* rp = r.get(j, "rope_parameters")) PUNICA_RETURN_IF_ERROR(r.rope_parameters(*rp, &c));
  PUNICA_RETURN_IF_ERROR(r.token_ids(&c));
  return c;
}

}  // namespace

Expected<ModelConfig> parse_hf_config(const std::string& json_text, const std::string& source) {
  PUNICA_RETURN_IF_ERROR(json_check_nesting(json_text, source));
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_file(source + ": not valid JSON");
  try {
    return parse_hf_config_json(j, source);
  } catch (const json::exception& e) {   // a type mismatch the checks above missed: still a clean error
    return invalid_file(source + ": " + e.what());
  }
}

int fuzz_hf_config_one_input(const uint8_t* data, size_t size) {
  auto c = parse_hf_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz-config.json");
  if (c) {
    PUNICA_ASSERT(c->num_attention_heads % c->num_key_value_heads == 0);
    PUNICA_ASSERT(c->head_dim > 0 && c->vocab_size > 0);
  }
  return 0;
}

}  // namespace punica
