#include "formats/peft_adapter.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "core/assert.h"
#include "core/mapped_file.h"
#include "formats/gguf_lora_adapter.h"
#include "formats/json_nesting.h"
#include "formats/safetensors.h"
#include "formats/weight_source.h"

namespace punica {
namespace {

using json = nlohmann::ordered_json;

// Config keys of PEFT 0.21 LoraConfig that change the forward pass in ways we do not implement: each
// must be absent, null, false or empty.
constexpr const char* kUnsupportedWhenSet[] = {
    "use_dora",  "lora_bias", "target_parameters", "layer_replication", "trainable_token_indices",
    "alora_invocation_tokens", "use_qalora", "arrow_config", "use_bdlora", "monteclora_config",
    "kasa_config", "velora_config", "modules_to_save",
};

bool json_is_unset(const json& v) {
  return v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_array() && v.empty()) ||
         (v.is_object() && v.empty());
}

Status config_error(const std::string& source, const std::string& field, const std::string& what) {
  return invalid_file(source + ": field '" + field + "': " + what);
}

// Python's re patterns as used in adapter configs are plain enough for ECMAScript std::regex. They come
// from an untrusted file: libstdc++'s regex compiler recurses once per nested group (a pattern of 50000
// '(' overflows the stack) and its default backtracking matcher takes exponential time on patterns like
// "(.*)*(.*)*x". So patterns are bounded in length and group depth, and where only the yes/no answer is
// needed they run on libstdc++'s polynomial (Thompson NFA) matcher, which rejects back-references.
constexpr size_t kMaxPatternChars = 1024;
constexpr int kMaxPatternGroupDepth = 32;

enum class RegexUse { kMatchOnly, kCaptures };

Expected<std::regex> compile_regex(const std::string& pattern, const std::string& what,
                                   RegexUse use = RegexUse::kMatchOnly) {
  if (pattern.size() > kMaxPatternChars)
    return invalid_file(what + ": regex of " + std::to_string(pattern.size()) + " characters (at most " +
                        std::to_string(kMaxPatternChars) + ")");
  int depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      ++i;
    } else if (pattern[i] == '(' && ++depth > kMaxPatternGroupDepth) {
      return invalid_file(what + ": regex '" + pattern.substr(0, 64) + "...' nests groups deeper than " +
                          std::to_string(kMaxPatternGroupDepth));
    } else if (pattern[i] == ')' && depth > 0) {
      --depth;
    }
  }
  auto flags = std::regex::ECMAScript;
#ifdef __GLIBCXX__
  if (use == RegexUse::kMatchOnly) flags |= std::regex_constants::__polynomial;
#endif
  try {
    return std::regex(pattern, flags);
  } catch (const std::regex_error& e) {
    return invalid_file(what + ": regex '" + pattern + "' does not compile: " + e.what());
  }
}

Status read_string_or_list(const json& v, const std::string& source, const std::string& field, bool* is_regex,
                           std::vector<std::string>* out) {
  out->clear();
  *is_regex = false;
  if (v.is_null()) return Status::ok();
  if (v.is_string()) {
    *is_regex = true;
    out->push_back(v.get<std::string>());
    return Status::ok();
  }
  if (!v.is_array()) return config_error(source, field, "expected a string (regex) or a list of strings");
  for (const json& e : v) {
    if (!e.is_string()) return config_error(source, field, "expected a list of strings, found " + e.dump());
    out->push_back(e.get<std::string>());
  }
  return Status::ok();
}

struct ModuleKey {
  LoraModule module;
  int layer;   // -1 for embed_tokens / lm_head
};

// Every module name a Llama/Qwen2 causal LM has (torch named_modules), so a target that selects a module
// which cannot carry LoRA (a norm, the rotary embedding, a container) is reported like PEFT would.
std::vector<std::string> all_base_module_keys(const ModelConfig& base) {
  std::vector<std::string> keys = {"model", "model.embed_tokens", "model.layers", "model.norm",
                                   "model.rotary_emb", "lm_head"};
  for (int64_t i = 0; i < base.num_hidden_layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i);
    for (const char* s : {"", ".self_attn", ".mlp", ".mlp.act_fn", ".input_layernorm", ".post_attention_layernorm"})
      keys.push_back(l + s);
  }
  return keys;
}

std::vector<ModuleKey> all_lora_module_keys(const ModelConfig& base) {
  std::vector<ModuleKey> keys = {{LoraModule::kEmbedTokens, -1}, {LoraModule::kLmHead, -1}};
  for (int64_t i = 0; i < base.num_hidden_layers; ++i)
    for (int m = 0; m < kNumLoraLayerModules; ++m) keys.push_back({static_cast<LoraModule>(m), static_cast<int>(i)});
  return keys;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool list_matches(const std::vector<std::string>& names, const std::string& key) {
  for (const std::string& n : names)
    if (key == n || ends_with(key, "." + n)) return true;
  return false;
}

std::optional<ModuleKey> parse_module_key(const std::string& key, const ModelConfig& base) {
  if (key == "model.embed_tokens") return ModuleKey{LoraModule::kEmbedTokens, -1};
  if (key == "lm_head") return ModuleKey{LoraModule::kLmHead, -1};
  for (const ModuleKey& k : all_lora_module_keys(base))
    if (k.layer >= 0 && peft_module_key(k.module, k.layer) == key) return k;
  return std::nullopt;
}

std::string shape_string(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// One tensor name of adapter_model.safetensors, split into module key and role.
enum class TensorRole { kA, kB, kBaseLayer, kDoraMagnitude, kOther };
struct ParsedTensorName {
  std::string module_key;
  TensorRole role = TensorRole::kOther;
  bool embedding_form = false;   // lora_embedding_A/B
};

ParsedTensorName parse_tensor_name(std::string name) {
  ParsedTensorName p;
  const std::string prefix = "base_model.model.";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  struct Marker { const char* text; TensorRole role; bool embedding; };
  const Marker markers[] = {{".lora_embedding_A", TensorRole::kA, true}, {".lora_embedding_B", TensorRole::kB, true},
                            {".lora_A", TensorRole::kA, false}, {".lora_B", TensorRole::kB, false},
                            {".lora_magnitude_vector", TensorRole::kDoraMagnitude, false}};
  for (const Marker& m : markers) {
    const size_t at = name.rfind(m.text);
    if (at == std::string::npos) continue;
    std::string tail = name.substr(at + std::string(m.text).size());
    // Linear: ".weight" or ".<adapter name>.weight"; embedding: "" or ".<adapter name>".
    bool ok;
    if (m.role == TensorRole::kDoraMagnitude) {
      ok = true;
    } else if (m.embedding) {
      ok = tail.empty() || (tail[0] == '.' && tail.find('.', 1) == std::string::npos);
    } else {
      ok = tail == ".weight" ||
           (ends_with(tail, ".weight") && tail[0] == '.' && tail.find('.', 1) == tail.size() - 7);
    }
    if (!ok) return p;
    p.module_key = name.substr(0, at);
    p.role = m.role;
    p.embedding_form = m.embedding;
    return p;
  }
  if (ends_with(name, ".base_layer.weight")) {
    p.module_key = name.substr(0, name.size() - std::string(".base_layer.weight").size());
    p.role = TensorRole::kBaseLayer;
  }
  return p;
}

Status check_finite(const std::vector<float>& v, const std::string& source, const std::string& tensor) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      return invalid_file(source + ": tensor '" + tensor + "': non-finite value " + std::to_string(v[i]) +
                          " at element " + std::to_string(i));
  return Status::ok();
}

}  // namespace

std::pair<int64_t, int64_t> lora_module_dims(LoraModule m, const ModelConfig& c) {
  switch (m) {
    case LoraModule::kQ: return {c.hidden_size, c.q_dim()};
    case LoraModule::kK:
    case LoraModule::kV: return {c.hidden_size, c.kv_dim()};
    case LoraModule::kO: return {c.q_dim(), c.hidden_size};
    case LoraModule::kGate:
    case LoraModule::kUp: return {c.hidden_size, c.intermediate_size};
    case LoraModule::kDown: return {c.intermediate_size, c.hidden_size};
    case LoraModule::kEmbedTokens: return {c.vocab_size, c.hidden_size};
    case LoraModule::kLmHead: return {c.hidden_size, c.vocab_size};
  }
  return {0, 0};
}

const char* lora_module_name(LoraModule m) {
  switch (m) {
    case LoraModule::kQ: return "q_proj";
    case LoraModule::kK: return "k_proj";
    case LoraModule::kV: return "v_proj";
    case LoraModule::kO: return "o_proj";
    case LoraModule::kGate: return "gate_proj";
    case LoraModule::kUp: return "up_proj";
    case LoraModule::kDown: return "down_proj";
    case LoraModule::kEmbedTokens: return "embed_tokens";
    case LoraModule::kLmHead: return "lm_head";
  }
  return "?";
}

bool lora_module_is_per_layer(LoraModule m) {
  return m != LoraModule::kEmbedTokens && m != LoraModule::kLmHead;
}

const LoraModuleWeights* LoraAdapter::find(LoraModule m, int layer) const {
  for (const LoraModuleWeights& w : modules)
    if (w.module == m && w.layer == layer) return &w;
  return nullptr;
}

std::string peft_module_key(LoraModule m, int layer) {
  switch (m) {
    case LoraModule::kEmbedTokens: return "model.embed_tokens";
    case LoraModule::kLmHead: return "lm_head";
    case LoraModule::kQ:
    case LoraModule::kK:
    case LoraModule::kV:
    case LoraModule::kO:
      return "model.layers." + std::to_string(layer) + ".self_attn." + lora_module_name(m);
    default:
      return "model.layers." + std::to_string(layer) + ".mlp." + lora_module_name(m);
  }
}

Expected<PeftLoraConfig> parse_peft_lora_config(const std::string& json_text, const std::string& source) {
  // ordered_json copies objects recursively as they grow: bound the nesting first.
  PUNICA_RETURN_IF_ERROR(json_check_nesting(json_text, source));
  json j;   // ordered: PEFT takes the first matching rank/alpha pattern in file order
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {   // parse_error, and out_of_range for numbers like 1E500000
    return invalid_file(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) return invalid_file(source + ": expected a JSON object");
  PeftLoraConfig c;
  c.source = source;
  auto get = [&](const char* k) -> const json& {
    static const json kNull;
    auto it = j.find(k);
    return it == j.end() ? kNull : *it;
  };

  if (const json& v = get("peft_type"); !v.is_null() && v != "LORA")
    return unsupported(source + ": field 'peft_type': " + v.dump() + " is not supported (expected \"LORA\")");
  for (const char* k : kUnsupportedWhenSet) {
    const json& v = get(k);
    if (!json_is_unset(v)) {
      const std::string what = std::string(k) == "use_dora" ? " (DoRA adapters are not supported)" :
                               std::string(k) == "modules_to_save" ? " (full module copies are not supported; only LoRA weights)" : "";
      return unsupported(source + ": field '" + k + "': " + v.dump() + " is not supported" + what);
    }
  }
  if (const json& v = get("bias"); !v.is_null() && v != "none")
    return unsupported(source + ": field 'bias': " + v.dump() + " is not supported (expected \"none\")");

  const json& r = get("r");
  if (!r.is_number_integer() || r.get<int64_t>() <= 0 || r.get<int64_t>() > (1 << 20))
    return config_error(source, "r", "expected a positive integer, found " + r.dump());
  c.r = static_cast<int>(r.get<int64_t>());
  const json& alpha = get("lora_alpha");
  if (alpha.is_null()) {
    c.lora_alpha = 8;   // PEFT's default
  } else if (!alpha.is_number() || !std::isfinite(alpha.get<double>())) {
    return config_error(source, "lora_alpha", "expected a number, found " + alpha.dump());
  } else {
    c.lora_alpha = alpha.get<double>();
  }
  for (auto [field, dst] : {std::pair<const char*, bool*>{"use_rslora", &c.use_rslora},
                            std::pair<const char*, bool*>{"fan_in_fan_out", &c.fan_in_fan_out}}) {
    const json& v = get(field);
    if (v.is_null()) continue;
    if (!v.is_boolean()) return config_error(source, field, "expected true or false, found " + v.dump());
    *dst = v.get<bool>();
  }

  const json& targets = get("target_modules");
  if (targets.is_null()) return config_error(source, "target_modules", "missing (no module would be adapted)");
  PUNICA_RETURN_IF_ERROR(read_string_or_list(targets, source, "target_modules", &c.target_is_regex, &c.target_modules));
  if (c.target_is_regex && c.target_modules[0] == "all-linear") {
    // PEFT expands "all-linear" to every linear layer but the output layer.
    c.target_is_regex = false;
    c.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  }
  PUNICA_RETURN_IF_ERROR(read_string_or_list(get("exclude_modules"), source, "exclude_modules", &c.exclude_is_regex,
                                             &c.exclude_modules));
  std::vector<std::pair<std::string, std::string>> regexes;   // (field, pattern)
  if (c.target_is_regex) regexes.emplace_back("target_modules", c.target_modules[0]);
  if (c.exclude_is_regex) regexes.emplace_back("exclude_modules", c.exclude_modules[0]);

  for (const char* field : {"rank_pattern", "alpha_pattern"}) {
    const json& v = get(field);
    if (v.is_null()) continue;
    if (!v.is_object()) return config_error(source, field, "expected an object {pattern: value}, found " + v.dump());
    for (auto it = v.begin(); it != v.end(); ++it) {
      regexes.emplace_back(std::string(field) + "." + it.key().substr(0, 64), "(.*\\.)?(" + it.key() + ")");
      if (std::string(field) == "rank_pattern") {
        if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (1 << 20))
          return config_error(source, std::string(field) + "." + it.key(), "expected a positive integer rank, found " + it->dump());
        c.rank_pattern.emplace_back(it.key(), static_cast<int>(it->get<int64_t>()));
      } else {
        if (!it->is_number() || !std::isfinite(it->get<double>()))
          return config_error(source, std::string(field) + "." + it.key(), "expected a number, found " + it->dump());
        c.alpha_pattern.emplace_back(it.key(), it->get<double>());
      }
    }
  }
  if (const json& v = get("layers_to_transform"); !v.is_null()) {
    if (c.target_is_regex)
      return config_error(source, "layers_to_transform", "cannot be used when target_modules is a regex string");
    std::vector<int64_t> layers;
    if (v.is_number_integer()) {
      layers.push_back(v.get<int64_t>());
      c.layers_to_transform_is_int = true;
    } else if (v.is_array()) {
      for (const json& e : v) {
        if (!e.is_number_integer()) return config_error(source, "layers_to_transform", "expected integers, found " + e.dump());
        layers.push_back(e.get<int64_t>());
      }
    } else {
      return config_error(source, "layers_to_transform", "expected an integer or a list of integers, found " + v.dump());
    }
    c.layers_to_transform = layers;
  }
  if (const json& v = get("layers_pattern"); !v.is_null()) {
    if (c.target_is_regex) return config_error(source, "layers_pattern", "cannot be used when target_modules is a regex string");
    bool is_string = false;
    PUNICA_RETURN_IF_ERROR(read_string_or_list(v, source, "layers_pattern", &is_string, &c.layers_pattern));
    for (const std::string& p : c.layers_pattern) {
      // Matched with captures (the layer index), so by the backtracking matcher: no quantifiers, which
      // keeps it linear. PEFT's layers_pattern values are plain names ("layers", "h", "blocks").
      if (p.find_first_of("*+?{}\\") != std::string::npos)
        return unsupported(source + ": field 'layers_pattern': '" + p.substr(0, 64) +
                           "' is not supported (expected a plain module name such as \"layers\", without *, +, ?, {} or \\)");
    }
  }
  for (const std::string& p : c.layers_pattern) {
    auto compiled = compile_regex("(?:^|.*?\\.)" + p + "\\.(\\d+)\\.", source + ": field 'layers_pattern'",
                                  RegexUse::kCaptures);
    if (!compiled) return compiled.status();
  }
  for (const auto& [field, re] : regexes) {
    auto compiled = compile_regex(re, source + ": field '" + field + "'");
    if (!compiled) return compiled.status();
  }
  return c;
}

Expected<std::optional<std::string>> peft_pattern_key(const std::vector<std::string>& patterns, const std::string& key) {
  for (const std::string& p : patterns) {
    PUNICA_ASSIGN_OR_RETURN(std::regex re, compile_regex("(.*\\.)?(" + p + ")", "pattern key"));
    if (std::regex_match(key, re)) return std::optional<std::string>(p);
  }
  return std::optional<std::string>();
}

Expected<bool> peft_target_module_matches(const PeftLoraConfig& c, const std::string& key) {
  if (!c.exclude_modules.empty()) {
    if (c.exclude_is_regex) {
      PUNICA_ASSIGN_OR_RETURN(std::regex re, compile_regex(c.exclude_modules[0], "exclude_modules"));
      if (std::regex_match(key, re)) return false;
    } else if (list_matches(c.exclude_modules, key)) {
      return false;
    }
  }
  if (c.target_is_regex) {
    PUNICA_ASSIGN_OR_RETURN(std::regex re, compile_regex(c.target_modules[0], "target_modules"));
    return std::regex_match(key, re);
  }
  // An exact key match skips the layer filter (PEFT returns early), a ".name" suffix match does not.
  if (std::find(c.target_modules.begin(), c.target_modules.end(), key) != c.target_modules.end()) return true;
  if (!list_matches(c.target_modules, key)) return false;
  if (!c.layers_to_transform || (!c.layers_to_transform_is_int && c.layers_to_transform->empty())) return true;
  std::smatch m;
  bool found = false;
  if (c.layers_pattern.empty()) {
    // Lazy: the first numbered segment is the layer index.
    static const std::regex kLayer(R"(.*?\.[^.]*\.(\d+)\.)");
    found = std::regex_search(key, m, kLayer, std::regex_constants::match_continuous);
  } else {
    for (const std::string& p : c.layers_pattern) {
      PUNICA_ASSIGN_OR_RETURN(std::regex re, compile_regex("(?:^|.*?\\.)" + p + "\\.(\\d+)\\.", "layers_pattern",
                                                           RegexUse::kCaptures));
      found = std::regex_search(key, m, re, std::regex_constants::match_continuous);
      if (found) break;
    }
  }
  if (!found) return false;
  const int64_t layer = std::stoll(m[1].str());
  const auto& want = *c.layers_to_transform;
  return std::find(want.begin(), want.end(), layer) != want.end();
}

Expected<PeftModuleRank> peft_module_rank(const PeftLoraConfig& c, const std::string& key) {
  PeftModuleRank out{c.r, c.lora_alpha, 0};
  std::vector<std::string> keys;
  for (const auto& [k, v] : c.rank_pattern) keys.push_back(k);
  PUNICA_ASSIGN_OR_RETURN(auto rk, peft_pattern_key(keys, key));
  if (rk) {
    for (const auto& [k, v] : c.rank_pattern)
      if (k == *rk) out.rank = v;
  }
  keys.clear();
  for (const auto& [k, v] : c.alpha_pattern) keys.push_back(k);
  PUNICA_ASSIGN_OR_RETURN(auto ak, peft_pattern_key(keys, key));
  if (ak) {
    for (const auto& [k, v] : c.alpha_pattern)
      if (k == *ak) out.alpha = v;
  }
  out.scale = static_cast<float>(c.use_rslora ? out.alpha / std::sqrt(static_cast<double>(out.rank))
                                              : out.alpha / out.rank);
  return out;
}

Expected<LoraAdapter> peft_adapter_from_tensors(const PeftLoraConfig& config, const WeightSource& tensors,
                                                const ModelConfig& base, const LoraLoadOptions& options,
                                                const std::string& source) {
  const std::string cfg_source = config.source.empty() ? "adapter_config.json" : config.source;
  // 1. Which modules PEFT would adapt, and with which rank.
  for (const std::string& key : all_base_module_keys(base)) {
    PUNICA_ASSIGN_OR_RETURN(bool hit, peft_target_module_matches(config, key));
    if (hit && key != "model.embed_tokens" && key != "lm_head")
      return unsupported(cfg_source + ": field 'target_modules' selects module '" + key +
                         "', which cannot carry LoRA (supported: q/k/v/o/gate/up/down_proj, embed_tokens, lm_head)");
  }
  struct Expect { ModuleKey id; PeftModuleRank rank; bool has_a = false, has_b = false; LoraModuleWeights w; };
  std::map<std::string, Expect> expected;
  std::vector<std::string> all_keys;
  for (const ModuleKey& k : all_lora_module_keys(base)) {
    const std::string key = peft_module_key(k.module, k.layer);
    all_keys.push_back(key);
    PUNICA_ASSIGN_OR_RETURN(bool hit, peft_target_module_matches(config, key));
    if (!hit) continue;
    PUNICA_ASSIGN_OR_RETURN(PeftModuleRank rank, peft_module_rank(config, key));
    if (rank.rank > options.max_rank)
      return invalid_file(cfg_source + ": module '" + key + "' has rank " + std::to_string(rank.rank) +
                          ", above the maximum LoRA rank " + std::to_string(options.max_rank) + " (--max-lora-rank)");
    expected[key] = Expect{k, rank, false, false, {}};
  }
  if (!config.target_is_regex) {
    for (const std::string& t : config.target_modules) {
      const bool known = std::any_of(all_keys.begin(), all_keys.end(),
                                     [&](const std::string& k) { return k == t || ends_with(k, "." + t); });
      if (!known)
        return unsupported(cfg_source + ": field 'target_modules': unknown target module '" + t +
                           "' (supported: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, embed_tokens, lm_head)");
    }
  }
  if (expected.empty())
    return invalid_file(cfg_source + ": field 'target_modules' selects no module of the base model");

  // 2. Every tensor in the file must be the A or B of an expected module, with PEFT's shape.
  for (const std::string& name : tensors.tensor_names()) {
    const TensorInfo* info = tensors.find(name);
    const ParsedTensorName p = parse_tensor_name(name);
    if (p.role == TensorRole::kDoraMagnitude)
      return unsupported(source + ": tensor '" + name + "': DoRA magnitude vectors are not supported");
    if (p.role == TensorRole::kBaseLayer && (p.module_key == "model.embed_tokens" || p.module_key == "lm_head")) {
      // save_embedding_layers=True stores the (unchanged) base embedding; its shape must still fit.
      const auto [in, out] = lora_module_dims(p.module_key == "lm_head" ? LoraModule::kLmHead : LoraModule::kEmbedTokens, base);
      const std::vector<int64_t> want = p.module_key == "lm_head" ? std::vector<int64_t>{out, in} : std::vector<int64_t>{in, out};
      if (info->shape != want)
        return invalid_file(source + ": tensor '" + name + "': shape " + shape_string(info->shape) + ", expected " +
                            shape_string(want) + " (resized vocabularies are not supported)");
      continue;
    }
    if (p.role != TensorRole::kA && p.role != TensorRole::kB)
      return invalid_file(source + ": tensor '" + name + "': not a LoRA A/B tensor (expected <module>.lora_A.weight / .lora_B.weight)");
    auto it = expected.find(p.module_key);
    if (it == expected.end()) {
      if (!parse_module_key(p.module_key, base))
        return unsupported(source + ": tensor '" + name + "': module '" + p.module_key + "' is not a supported LoRA target of this base model");
      return invalid_file(source + ": tensor '" + name + "': module '" + p.module_key +
                          "' is not selected by target_modules/layers_to_transform in adapter_config.json");
    }
    Expect& e = it->second;
    const bool is_embed = e.id.module == LoraModule::kEmbedTokens;
    if (is_embed != p.embedding_form)
      return invalid_file(source + ": tensor '" + name + "': expected " +
                          (is_embed ? "lora_embedding_A/B for embed_tokens" : "lora_A/lora_B.weight for a linear module"));
    bool& seen = p.role == TensorRole::kA ? e.has_a : e.has_b;
    if (seen) return invalid_file(source + ": tensor '" + name + "': duplicate " + (p.role == TensorRole::kA ? "A" : "B") +
                                  " for module '" + p.module_key + "'");
    seen = true;
    const auto [in, out] = lora_module_dims(e.id.module, base);
    const int64_t r = e.rank.rank;
    const std::vector<int64_t> want = p.role == TensorRole::kA ? std::vector<int64_t>{r, in} : std::vector<int64_t>{out, r};
    if (info->shape != want)
      return invalid_file(source + ": tensor '" + name + "': shape " + shape_string(info->shape) + ", expected " +
                          shape_string(want) + " (rank " + std::to_string(r) + " from adapter_config.json)");
    std::vector<float>& dst = p.role == TensorRole::kA ? e.w.a : e.w.b;
    dst.resize(static_cast<size_t>(r * (p.role == TensorRole::kA ? in : out)));
    PUNICA_RETURN_IF_ERROR(tensors.read_f32(name, dst.data(), static_cast<int64_t>(dst.size())));
    PUNICA_RETURN_IF_ERROR(check_finite(dst, source, name));
  }

  // 3. Both halves of every expected module.
  LoraAdapter adapter;
  adapter.format = "peft";
  for (auto& [key, e] : expected) {
    if (!e.has_a || !e.has_b)
      return invalid_file(source + ": module '" + key + "': missing its " + (e.has_a ? "lora_B" : "lora_A") +
                          " tensor (adapter_config.json targets it)");
    const auto [in, out] = lora_module_dims(e.id.module, base);
    e.w.module = e.id.module;
    e.w.layer = e.id.layer;
    e.w.rank = e.rank.rank;
    e.w.scale = e.rank.scale;
    e.w.in_features = in;
    e.w.out_features = out;
    adapter.max_rank = std::max(adapter.max_rank, e.w.rank);
    adapter.modules.push_back(std::move(e.w));
  }
  std::sort(adapter.modules.begin(), adapter.modules.end(), [](const LoraModuleWeights& a, const LoraModuleWeights& b) {
    return a.layer != b.layer ? a.layer < b.layer : a.module < b.module;
  });
  return adapter;
}

Expected<LoraAdapter> load_peft_adapter(const std::string& dir, const ModelConfig& base, const LoraLoadOptions& options) {
  namespace fs = std::filesystem;
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  const std::string st_path = (fs::path(dir) / "adapter_model.safetensors").string();
  std::error_code ec;
  if (!fs::is_regular_file(st_path, ec)) {
    if (fs::exists(fs::path(dir) / "adapter_model.bin", ec))
      return unsupported(dir + ": only adapter_model.bin (a pickle) is present; pickles are never loaded. Convert it to "
                               "adapter_model.safetensors (e.g. PeftModel.save_pretrained(..., safe_serialization=True))");
    return not_found(dir + ": adapter_model.safetensors not found");
  }
  if (!fs::is_regular_file(cfg_path, ec)) return not_found(dir + ": adapter_config.json not found");
  PUNICA_ASSIGN_OR_RETURN(std::string text, read_text_file(cfg_path, 1u << 20));
  PUNICA_ASSIGN_OR_RETURN(PeftLoraConfig config, parse_peft_lora_config(text, cfg_path));
  PUNICA_ASSIGN_OR_RETURN(auto tensors, open_safetensors_weights(st_path));
  PUNICA_ASSIGN_OR_RETURN(LoraAdapter adapter, peft_adapter_from_tensors(config, *tensors, base, options, st_path));
  adapter.path = dir;
  return adapter;
}

Expected<LoraAdapter> load_lora_adapter(const std::string& path, const ModelConfig& base, const LoraLoadOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_peft_adapter(path, base, options);
  if (std::filesystem::is_regular_file(path, ec)) return load_gguf_lora_adapter(path, base, options);
  return not_found(path + ": no such adapter (expected a PEFT folder or a .gguf LoRA file)");
}

int fuzz_peft_config_one_input(const uint8_t* data, size_t size) {
  auto c = parse_peft_lora_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz/adapter_config.json");
  if (!c) return 0;
  ModelConfig base;
  base.architecture = "llama";
  base.vocab_size = 32;
  base.hidden_size = 16;
  base.intermediate_size = 24;
  base.num_hidden_layers = 2;
  base.num_attention_heads = 2;
  base.num_key_value_heads = 1;
  base.head_dim = 8;
  for (const ModuleKey& k : all_lora_module_keys(base)) {
    const std::string key = peft_module_key(k.module, k.layer);
    auto hit = peft_target_module_matches(*c, key);
    auto rank = peft_module_rank(*c, key);
    if (rank) PUNICA_ASSERT(rank->rank > 0);
    (void)hit;
  }
  return 0;
}

}  // namespace punica
