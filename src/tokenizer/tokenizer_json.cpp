// Tokenizer from a HF tokenizer.json (+ tokenizer_config.json, generation_config.json and
// special_tokens_map.json beside it). Only the pipeline pieces the Llama-family tokenizers use are
// accepted; anything else is rejected with a message naming the field, never silently approximated.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace punica {
namespace {

using nlohmann::json;
constexpr int64_t kMaxVocab = 4'000'000;

struct JsonLoader {
  std::string file;
  tok::TokenizerSpec& spec;

  Status error(const std::string& field, const std::string& what) const {
    return invalid_file(file + ": " + field + ": " + what);
  }
  Status unsupported_field(const std::string& field, const std::string& what) const {
    return unsupported(file + ": " + field + ": " + what);
  }
  static std::string type_of(const json& j, const char* fallback = "?") {
    return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : fallback;
  }
  static bool get_bool(const json& j, const char* key, bool dflt) {
    return j.is_object() && j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : dflt;
  }

  Status load_model(const json& m) {
    if (!m.is_object()) return error("model", "missing or not an object");
    std::string type = type_of(m, m.contains("merges") ? "BPE" : "?");
    if (type != "BPE") return unsupported_field("model.type", "'" + type + "' is not supported (expected 'BPE')");
    if (!m.contains("vocab") || !m["vocab"].is_object()) return error("model.vocab", "missing or not an object");
    const json& vocab = m["vocab"];
    if (static_cast<int64_t>(vocab.size()) > kMaxVocab) return error("model.vocab", "absurd size " + std::to_string(vocab.size()));
    std::vector<std::string> tokens(vocab.size());
    std::vector<uint8_t> seen(vocab.size(), 0);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer())
        return error("model.vocab", "token '" + it.key() + "' has a non-integer id");
      int64_t id = it.value().get<int64_t>();
      if (id < 0 || id >= static_cast<int64_t>(tokens.size()))
        return error("model.vocab", "token '" + it.key() + "' has id " + std::to_string(id) + " outside [0, " +
                                        std::to_string(tokens.size()) + ") (ids must be dense)");
      if (seen[id]) return error("model.vocab", "id " + std::to_string(id) + " is used twice ('" + tokens[id] + "' and '" + it.key() + "')");
      seen[id] = 1;
      tokens[id] = it.key();
    }
    spec.tokens = tokens;
    spec.bpe.set_vocab(std::move(tokens));
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(key) && !m[key].is_null() && !(m[key].is_string() && m[key].get<std::string>().empty()))
        return unsupported_field(std::string("model.") + key, "must be null or empty");
    if (!m.contains("merges") || !m["merges"].is_array()) return error("model.merges", "missing or not an array");
    const json& merges = m["merges"];
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& e = merges[i];
      std::string l, r;
      if (e.is_string()) {
        const std::string& s = e.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          return error("model.merges", "entry " + std::to_string(i) + " '" + s + "' is not two tokens separated by one space");
        l = s.substr(0, sp);
        r = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        l = e[0].get<std::string>();
        r = e[1].get<std::string>();
      } else {
        return error("model.merges", "entry " + std::to_string(i) + " is neither \"a b\" nor [\"a\", \"b\"]");
      }
      if (!spec.bpe.add_merge(l, r))
        return error("model.merges", "entry " + std::to_string(i) + " ('" + l + "', '" + r +
                                         "') names a token (or a merged token) not in model.vocab");
    }
    tok::BpeModel::Options o;
    o.byte_fallback = get_bool(m, "byte_fallback", false);
    o.fuse_unk = get_bool(m, "fuse_unk", false);
    o.ignore_merges = get_bool(m, "ignore_merges", false);
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      o.unk_id = spec.bpe.find(m["unk_token"].get<std::string>());
      if (o.unk_id < 0) return error("model.unk_token", "'" + m["unk_token"].get<std::string>() + "' is not in model.vocab");
    }
    spec.bpe.set_options(o);
    return Status::ok();
  }

  Status load_added_tokens(const json& arr) {
    if (arr.is_null()) return Status::ok();
    if (!arr.is_array()) return error("added_tokens", "not an array");
    for (size_t i = 0; i < arr.size(); ++i) {
      const json& a = arr[i];
      std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        return error(where, "expected an object with an integer 'id' and a string 'content'");
      int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id >= kMaxVocab) return error(where + ".id", std::to_string(id) + " is out of range");
      tok::AddedToken t;
      t.id = static_cast<int32_t>(id);
      t.content = a["content"].get<std::string>();
      t.special = get_bool(a, "special", false);
      t.lstrip = get_bool(a, "lstrip", false);
      t.rstrip = get_bool(a, "rstrip", false);
      t.single_word = get_bool(a, "single_word", false);
      t.normalized = get_bool(a, "normalized", !t.special);
      if (static_cast<size_t>(id) >= spec.tokens.size()) {
        if (static_cast<size_t>(id) != spec.tokens.size())
          return error(where + ".id", std::to_string(id) + " leaves a gap after the vocabulary (size " +
                                          std::to_string(spec.tokens.size()) + ")");
        spec.tokens.push_back(t.content);
      } else if (spec.tokens[id] != t.content) {
        return error(where, "id " + std::to_string(id) + " is '" + spec.tokens[id] + "' in model.vocab but '" + t.content + "' here");
      }
      spec.added.push_back(std::move(t));
    }
    return Status::ok();
  }

  Status load_normalizer(const json& n, const std::string& field) {
    if (n.is_null()) return Status::ok();
    std::string type = type_of(n);
    if (type == "Sequence") {
      if (!n.contains("normalizers") || !n["normalizers"].is_array()) return error(field + ".normalizers", "not an array");
      for (size_t i = 0; i < n["normalizers"].size(); ++i)
        PUNICA_RETURN_IF_ERROR(load_normalizer(n["normalizers"][i], field + ".normalizers[" + std::to_string(i) + "]"));
    } else if (type == "Prepend" && n.contains("prepend") && n["prepend"].is_string()) {
      spec.normalizer.push_back({tok::NormalizerStep::kPrepend, n["prepend"].get<std::string>(), ""});
    } else if (type == "Replace" && n.contains("pattern") && n["pattern"].contains("String") && n.contains("content")) {
      spec.normalizer.push_back({tok::NormalizerStep::kReplace, n["pattern"]["String"].get<std::string>(),
                                 n["content"].get<std::string>()});
    } else if (type == "NFC") {
      spec.normalizer.push_back({tok::NormalizerStep::kNfc, "", ""});
    } else {
      return unsupported_field(field, "normalizer '" + type + "' is not supported");
    }
    return Status::ok();
  }

  Status load_pre_tokenizer(const json& p, const std::string& field) {
    if (p.is_null()) return Status::ok();
    std::string type = type_of(p);
    tok::PreTokenizerStep step;
    if (type == "Sequence") {
      if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array()) return error(field + ".pretokenizers", "not an array");
      for (size_t i = 0; i < p["pretokenizers"].size(); ++i)
        PUNICA_RETURN_IF_ERROR(load_pre_tokenizer(p["pretokenizers"][i], field + ".pretokenizers[" + std::to_string(i) + "]"));
      return Status::ok();
    } else if (type == "Split") {
      step.kind = tok::PreTokenizerStep::kSplit;
      std::string regex;
      if (p.contains("pattern") && p["pattern"].is_object() && p["pattern"].contains("Regex") && p["pattern"]["Regex"].is_string())
        regex = p["pattern"]["Regex"].get<std::string>();
      auto pattern = tok::split_pattern_from_regex(regex);
      if (!pattern) return unsupported_field(field + ".pattern", "split regex '" + regex + "' is not one this build implements (GPT-2, Llama-3, Qwen2)");
      if (!p.contains("behavior") || p["behavior"] != "Isolated" || get_bool(p, "invert", false))
        return unsupported_field(field + ".behavior", "only 'Isolated' without invert is supported");
      step.pattern = *pattern;
    } else if (type == "ByteLevel") {
      step.kind = tok::PreTokenizerStep::kByteLevel;
      step.add_prefix_space = get_bool(p, "add_prefix_space", true);
      step.use_regex = get_bool(p, "use_regex", true);
    } else if (type == "Metaspace") {
      step.kind = tok::PreTokenizerStep::kMetaspace;
      if (p.contains("replacement") && p["replacement"].is_string()) step.replacement = p["replacement"].get<std::string>();
      if (step.replacement.empty()) return error(field + ".replacement", "must not be empty");
      std::string scheme = p.contains("prepend_scheme") && p["prepend_scheme"].is_string()
                               ? p["prepend_scheme"].get<std::string>()
                               : (get_bool(p, "add_prefix_space", true) ? "always" : "never");
      if (scheme == "always") step.prepend = tok::PreTokenizerStep::kAlways;
      else if (scheme == "first") step.prepend = tok::PreTokenizerStep::kFirst;
      else if (scheme == "never") step.prepend = tok::PreTokenizerStep::kNever;
      else return error(field + ".prepend_scheme", "'" + scheme + "' is not always/first/never");
      step.split = get_bool(p, "split", true);
    } else if (type == "Digits") {
      step.kind = tok::PreTokenizerStep::kDigits;
      step.individual_digits = get_bool(p, "individual_digits", false);
    } else {
      return unsupported_field(field, "pre-tokenizer '" + type + "' is not supported");
    }
    spec.pre_tokenizer.push_back(step);
    return Status::ok();
  }

  Status load_decoder(const json& d) {
    if (d.is_null()) return Status::ok();
    std::string type = type_of(d);
    tok::DecoderSpec& out = spec.decoder;
    if (type == "ByteLevel") {
      out.kind = tok::DecoderSpec::kByteLevel;
      return Status::ok();
    }
    if (type == "Metaspace") {
      out.kind = tok::DecoderSpec::kSentencePiece;
      out.replace_from = d.contains("replacement") && d["replacement"].is_string() ? d["replacement"].get<std::string>() : "\xE2\x96\x81";
      out.replace_to = " ";
      std::string scheme = d.contains("prepend_scheme") && d["prepend_scheme"].is_string() ? d["prepend_scheme"].get<std::string>() : "always";
      out.strip_leading_spaces = scheme == "never" ? 0 : 1;
      return Status::ok();
    }
    if (type != "Sequence" || !d.contains("decoders") || !d["decoders"].is_array())
      return unsupported_field("decoder", "decoder '" + type + "' is not supported");
    out.kind = tok::DecoderSpec::kSentencePiece;
    for (size_t i = 0; i < d["decoders"].size(); ++i) {
      const json& s = d["decoders"][i];
      std::string t = type_of(s);
      std::string field = "decoder.decoders[" + std::to_string(i) + "]";
      if (t == "Replace" && s.contains("pattern") && s["pattern"].contains("String") && s.contains("content")) {
        out.replace_from = s["pattern"]["String"].get<std::string>();
        out.replace_to = s["content"].get<std::string>();
      } else if (t == "ByteFallback") {
        out.byte_fallback = true;
      } else if (t == "Fuse") {
      } else if (t == "Strip" && s.contains("content") && s["content"] == " " && s.contains("start") &&
                 s["start"].is_number_integer() && s.value("stop", 0) == 0) {
        out.strip_leading_spaces = static_cast<int>(std::min<int64_t>(s["start"].get<int64_t>(), 16));
      } else if (t == "ByteLevel" && d["decoders"].size() == 1) {
        out.kind = tok::DecoderSpec::kByteLevel;
      } else {
        return unsupported_field(field, "decoder step '" + t + "' is not supported");
      }
    }
    return Status::ok();
  }

  Status load_post_processor(const json& p) {
    if (p.is_null()) return Status::ok();
    std::string type = type_of(p);
    if (type == "ByteLevel") return Status::ok();
    if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
      for (const json& q : p["processors"]) PUNICA_RETURN_IF_ERROR(load_post_processor(q));
      return Status::ok();
    }
    if (type != "TemplateProcessing") return unsupported_field("post_processor", "'" + type + "' is not supported");
    if (!p.contains("single") || !p["single"].is_array()) return error("post_processor.single", "missing or not an array");
    bool after = false;
    for (const json& item : p["single"]) {
      if (item.contains("Sequence")) {
        after = true;
        continue;
      }
      if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id") || !item["SpecialToken"]["id"].is_string())
        return error("post_processor.single", "an item is neither Sequence nor SpecialToken");
      std::string name = item["SpecialToken"]["id"].get<std::string>();
      const json* ids = nullptr;
      if (p.contains("special_tokens") && p["special_tokens"].contains(name) && p["special_tokens"][name].contains("ids"))
        ids = &p["special_tokens"][name]["ids"];
      if (!ids || !ids->is_array()) return error("post_processor.special_tokens", "'" + name + "' has no ids");
      for (const json& id : *ids) {
        if (!id.is_number_integer()) return error("post_processor.special_tokens", "'" + name + "' has a non-integer id");
        (after ? spec.suffix_ids : spec.prefix_ids).push_back(static_cast<int32_t>(std::clamp<int64_t>(id.get<int64_t>(), -2, kMaxVocab)));
      }
    }
    return Status::ok();
  }
};

Expected<json> read_json_file(const std::string& path) {
  PUNICA_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_file(path + ": not valid JSON");
  return j;
}

// "bos_token": "<s>" or {"content": "<s>", ...}
std::string token_name(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

}  // namespace

Expected<std::unique_ptr<Tokenizer>> Tokenizer::load_tokenizer_json(const std::string& json_path) {
  PUNICA_ASSIGN_OR_RETURN(std::string text, read_text_file(json_path, size_t{512} << 20));
  return from_json_text(text, json_path, std::filesystem::path(json_path).parent_path().string());
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_json_text(std::string_view json_text, const std::string& name,
                                                               const std::string& config_dir) {
  json root = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return invalid_file(name + ": not valid JSON");
  if (!root.is_object()) return invalid_file(name + ": expected a JSON object at the top level");
  tok::TokenizerSpec spec;
  spec.source = name;
  JsonLoader l{name, spec};
  if (!root.contains("model")) return l.error("model", "missing");
  PUNICA_RETURN_IF_ERROR(l.load_model(root["model"]));
  PUNICA_RETURN_IF_ERROR(l.load_added_tokens(root.value("added_tokens", json())));
  PUNICA_RETURN_IF_ERROR(l.load_normalizer(root.value("normalizer", json()), "normalizer"));
  PUNICA_RETURN_IF_ERROR(l.load_pre_tokenizer(root.value("pre_tokenizer", json()), "pre_tokenizer"));
  PUNICA_RETURN_IF_ERROR(l.load_decoder(root.value("decoder", json())));
  PUNICA_RETURN_IF_ERROR(l.load_post_processor(root.value("post_processor", json())));
  const auto n = static_cast<int64_t>(spec.tokens.size());
  for (int32_t id : spec.prefix_ids)
    if (id < 0 || id >= n) return l.error("post_processor.special_tokens", "id " + std::to_string(id) + " is out of range");
  for (int32_t id : spec.suffix_ids)
    if (id < 0 || id >= n) return l.error("post_processor.special_tokens", "id " + std::to_string(id) + " is out of range");

  // Side files (all optional).
  namespace fs = std::filesystem;
  auto find_id = [&](const std::string& tok_name) -> int32_t {
    for (const auto& t : spec.added)
      if (t.content == tok_name) return t.id;
    return spec.bpe.find(tok_name);
  };
  std::error_code ec;
  if (!config_dir.empty()) {
    fs::path dir(config_dir);
    for (const char* file : {"special_tokens_map.json", "tokenizer_config.json"}) {
      fs::path p = dir / file;
      if (!fs::exists(p, ec)) continue;
      PUNICA_ASSIGN_OR_RETURN(json cfg, read_json_file(p.string()));
      if (!cfg.is_object()) return invalid_file(p.string() + ": expected a JSON object");
      for (auto [key, slot] : {std::pair{"bos_token", &spec.bos_id}, std::pair{"eos_token", &spec.eos_id},
                               std::pair{"unk_token", &spec.unk_id}, std::pair{"pad_token", &spec.pad_id}}) {
        if (!cfg.contains(key) || cfg[key].is_null()) continue;
        std::string tok_name = token_name(cfg[key]);
        int32_t id = find_id(tok_name);
        if (id < 0) return invalid_file(p.string() + ": " + key + ": '" + tok_name + "' is not a token of " + name);
        *slot = id;
      }
      if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
        // transformers rebuilds the post-processor of Llama-style tokenizers from these flags.
        bool add = cfg["add_bos_token"].get<bool>();
        std::erase(spec.prefix_ids, spec.bos_id);
        if (add && spec.bos_id >= 0) spec.prefix_ids.insert(spec.prefix_ids.begin(), spec.bos_id);
      }
      if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) {
        bool add = cfg["add_eos_token"].get<bool>();
        std::erase(spec.suffix_ids, spec.eos_id);
        if (add && spec.eos_id >= 0) spec.suffix_ids.push_back(spec.eos_id);
      }
      if (cfg.contains("chat_template")) {
        const json& ct = cfg["chat_template"];
        if (ct.is_string()) spec.chat_template = ct.get<std::string>();
        else if (ct.is_array())
          for (const json& e : ct)
            if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
              spec.chat_template = e["template"].get<std::string>();
      }
    }
    // Newer transformers save the template beside the config as chat_template.jinja.
    fs::path jinja = dir / "chat_template.jinja";
    if (spec.chat_template.empty() && fs::exists(jinja, ec)) {
      PUNICA_ASSIGN_OR_RETURN(spec.chat_template, read_text_file(jinja.string(), size_t{1} << 20));
    }
    fs::path gen = dir / "generation_config.json";
    if (fs::exists(gen, ec)) {
      PUNICA_ASSIGN_OR_RETURN(json cfg, read_json_file(gen.string()));
      if (cfg.is_object() && cfg.contains("eos_token_id")) {
        const json& e = cfg["eos_token_id"];
        std::vector<json> ids = e.is_array() ? std::vector<json>(e.begin(), e.end()) : std::vector<json>{e};
        for (const json& id : ids) {
          if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= n)
            return invalid_file(gen.string() + ": eos_token_id: " + id.dump() + " is not a token id in [0, " + std::to_string(n) + ")");
          spec.stop_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
        }
      }
    }
  }
  spec.add_bos = !spec.prefix_ids.empty() && spec.prefix_ids.front() == spec.bos_id;
  spec.add_eos = !spec.suffix_ids.empty() && spec.suffix_ids.back() == spec.eos_id;
  return finish(std::move(spec));
}

}  // namespace punica
