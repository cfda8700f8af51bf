// Tokenizer from GGUF metadata (tokenizer.ggml.*), built the way transformers' GGUF conversion builds
// the fast tokenizer (integrations/gguf/gguf_tokenizer_mapping.py): that is the reference.
//   gpt2:  byte-level BPE; vocabulary and merges from the file; the split pattern from
//          tokenizer.ggml.pre (GPT-2's when the name is not one of the Llama-3 / Qwen2 families).
//   llama: SentencePiece-style BPE with byte fallback; merges recovered from the scores exactly as
//          transformers' generate_merges() does; Metaspace("▁", prepend first, no split).
// token_type 3 (control) -> special added token; 4 (user defined) -> plain added token.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace punica {
namespace {

constexpr int64_t kMaxVocab = 4'000'000;  // far above any real vocabulary; bounds memory on bad files

size_t code_point_count(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

// transformers.tokenization_utils_base.generate_merges(vocab, vocab_scores): every split of every token
// into two vocabulary tokens, ordered by the token's score (best first), then longer left part, then
// longer right part; ties keep file order (Python's sort is stable, also with reverse=True).
std::vector<std::pair<std::string_view, std::string_view>> merges_from_scores(
    const std::vector<std::string>& tokens, const std::vector<float>& scores) {
  std::unordered_map<std::string_view, int32_t> id;
  id.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) id[tokens[i]] = static_cast<int32_t>(i);
  struct Cand {
    std::string_view l, r;
    float score;
    uint32_t len_l, len_r;
    int32_t id_l, id_r;
  };
  std::vector<Cand> all;
  std::vector<Cand> local;
  // vocab_scores = dict(zip(tokens, scores)): a repeated token keeps its first position, its last score.
  std::unordered_map<std::string_view, float> score_of;
  for (size_t i = 0; i < tokens.size(); ++i) score_of[tokens[i]] = scores[i];
  std::unordered_map<std::string_view, bool> seen;
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::string_view tok = tokens[t];
    if (seen.count(tok)) continue;
    seen[tok] = true;
    local.clear();
    for (size_t k = 1; k < tok.size(); ++k) {
      if ((static_cast<uint8_t>(tok[k]) & 0xC0) == 0x80) continue;  // split between code points only
      std::string_view l = tok.substr(0, k), r = tok.substr(k);
      auto il = id.find(l), ir = id.find(r);
      if (il == id.end() || ir == id.end()) continue;
      local.push_back({l, r, score_of[tok], static_cast<uint32_t>(code_point_count(l)),
                       static_cast<uint32_t>(code_point_count(r)), il->second, ir->second});
    }
    std::stable_sort(local.begin(), local.end(), [](const Cand& a, const Cand& b) {
      return a.id_l != b.id_l ? a.id_l < b.id_l : a.id_r < b.id_r;
    });
    all.insert(all.end(), local.begin(), local.end());
  }
  std::stable_sort(all.begin(), all.end(), [](const Cand& a, const Cand& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.len_l != b.len_l) return a.len_l > b.len_l;
    return a.len_r > b.len_r;
  });
  std::vector<std::pair<std::string_view, std::string_view>> out;
  out.reserve(all.size());
  for (const Cand& c : all) out.emplace_back(c.l, c.r);
  return out;
}

}  // namespace

Expected<std::unique_ptr<Tokenizer>> Tokenizer::load_gguf(const std::string& gguf_path) {
  PUNICA_ASSIGN_OR_RETURN(auto gguf, GgufFile::open(gguf_path));
  return from_gguf(*gguf);
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufFile& gguf) {
  const std::string& file = gguf.path();
  auto field_error = [&](const char* key, const std::string& what) {
    return invalid_file(file + ": " + key + ": " + what);
  };
  PUNICA_ASSIGN_OR_RETURN(std::string model, gguf.get_string("tokenizer.ggml.model"));
  if (model != "gpt2" && model != "llama")
    return unsupported(file + ": tokenizer.ggml.model: '" + model +
                       "' is not supported (expected 'gpt2' (byte-level BPE) or 'llama' (SentencePiece BPE))");
  const bool byte_level = model == "gpt2";

  const GgufValue* tokens_v = gguf.find("tokenizer.ggml.tokens");
  if (!tokens_v) return field_error("tokenizer.ggml.tokens", "missing");
  if (tokens_v->type() != GgufType::kArray || tokens_v->array_type() != GgufType::kString)
    return field_error("tokenizer.ggml.tokens", "expected an array of strings");
  if (tokens_v->array_size() == 0 || static_cast<int64_t>(tokens_v->array_size()) > kMaxVocab)
    return field_error("tokenizer.ggml.tokens", "size " + std::to_string(tokens_v->array_size()) +
                                                    " is not in [1, " + std::to_string(kMaxVocab) + "]");
  PUNICA_ASSIGN_OR_RETURN(auto token_views, gguf.get_string_view_array("tokenizer.ggml.tokens"));
  const size_t n = token_views.size();

  std::vector<int64_t> token_type(n, 1);
  if (gguf.find("tokenizer.ggml.token_type")) {
    PUNICA_ASSIGN_OR_RETURN(token_type, gguf.get_int_array("tokenizer.ggml.token_type"));
    if (token_type.size() != n)
      return field_error("tokenizer.ggml.token_type", "has " + std::to_string(token_type.size()) +
                                                          " entries, expected one per token (" + std::to_string(n) + ")");
  }

  tok::TokenizerSpec spec;
  spec.source = file;
  spec.tokens.reserve(n);
  for (std::string_view t : token_views) {
    if (!tok::utf8_is_valid(t)) return field_error("tokenizer.ggml.tokens", "token " + std::to_string(spec.tokens.size()) + " is not valid UTF-8");
    spec.tokens.emplace_back(t);
  }
  if (byte_level) {
    // transformers re-spells a token that uses characters outside the byte alphabet in that alphabet.
    for (std::string& t : spec.tokens) {
      auto cps = tok::utf8_to_code_points(t);
      bool in_alphabet = std::all_of(cps.begin(), cps.end(), [](uint32_t c) { return tok::byte_level_byte(c) >= 0; });
      if (!in_alphabet) {
        std::string respelled;
        for (char c : t) tok::utf8_append(respelled, tok::byte_level_char(static_cast<uint8_t>(c)));
        t = std::move(respelled);
      }
    }
  }
  spec.bpe.set_vocab(spec.tokens);

  if (byte_level) {
    const GgufValue* merges_v = gguf.find("tokenizer.ggml.merges");
    if (!merges_v) return field_error("tokenizer.ggml.merges", "missing (required for a 'gpt2' tokenizer)");
    if (merges_v->type() != GgufType::kArray || merges_v->array_type() != GgufType::kString)
      return field_error("tokenizer.ggml.merges", "expected an array of strings");
    PUNICA_ASSIGN_OR_RETURN(auto merges, gguf.get_string_view_array("tokenizer.ggml.merges"));
    for (size_t i = 0; i < merges.size(); ++i) {
      std::string_view m = merges[i];
      size_t sp = m.find(' ');
      if (sp == std::string_view::npos || m.find(' ', sp + 1) != std::string_view::npos)
        return field_error("tokenizer.ggml.merges", "entry " + std::to_string(i) + " '" + std::string(m) +
                                                        "' is not two tokens separated by one space");
      if (!spec.bpe.add_merge(m.substr(0, sp), m.substr(sp + 1)))
        return field_error("tokenizer.ggml.merges", "entry " + std::to_string(i) + " '" + std::string(m) +
                                                        "' names a token (or a merged token) not in the vocabulary");
    }
    tok::PreTokenizerStep step;
    step.kind = tok::PreTokenizerStep::kByteLevel;
    std::string pre = "default";
    if (gguf.find("tokenizer.ggml.pre")) {
      PUNICA_ASSIGN_OR_RETURN(pre, gguf.get_string("tokenizer.ggml.pre"));
    }
    auto pattern = tok::split_pattern_from_gguf_pre(pre);
    if (!pattern) return unsupported(file + ": tokenizer.ggml.pre: '" + pre + "' uses a split pattern this build does not implement");
    step.pattern = *pattern;
    spec.pre_tokenizer.push_back(step);
    spec.decoder.kind = tok::DecoderSpec::kByteLevel;
  } else {
    const GgufValue* scores_v = gguf.find("tokenizer.ggml.scores");
    if (!scores_v) return field_error("tokenizer.ggml.scores", "missing (required for a 'llama' tokenizer)");
    PUNICA_ASSIGN_OR_RETURN(auto scores, gguf.get_float_array("tokenizer.ggml.scores"));
    if (scores.size() != n)
      return field_error("tokenizer.ggml.scores", "has " + std::to_string(scores.size()) +
                                                      " entries, expected one per token (" + std::to_string(n) + ")");
    for (size_t i = 0; i < scores.size(); ++i)
      if (!std::isfinite(scores[i]))
        return field_error("tokenizer.ggml.scores", "entry " + std::to_string(i) + " is not a finite number");
    if (gguf.find("tokenizer.ggml.merges")) {
      PUNICA_ASSIGN_OR_RETURN(auto merges, gguf.get_string_view_array("tokenizer.ggml.merges"));
      for (size_t i = 0; i < merges.size(); ++i) {
        size_t sp = merges[i].find(' ');
        if (sp == std::string_view::npos || !spec.bpe.add_merge(merges[i].substr(0, sp), merges[i].substr(sp + 1)))
          return field_error("tokenizer.ggml.merges", "entry " + std::to_string(i) + " is not a merge of two vocabulary tokens");
      }
    } else {
      for (const auto& [l, r] : merges_from_scores(spec.tokens, scores)) (void)spec.bpe.add_merge(l, r);
    }
    tok::BpeModel::Options o;
    o.byte_fallback = true;
    o.fuse_unk = true;
    spec.bpe.set_options(o);
    tok::PreTokenizerStep step;
    step.kind = tok::PreTokenizerStep::kMetaspace;
    step.prepend = tok::PreTokenizerStep::kFirst;
    step.split = false;
    spec.pre_tokenizer.push_back(step);
    spec.decoder.kind = tok::DecoderSpec::kSentencePiece;
    spec.decoder.byte_fallback = true;
    spec.decoder.replace_from = "\xE2\x96\x81";
    spec.decoder.replace_to = " ";
    spec.decoder.strip_leading_spaces = 1;
  }

  // Added tokens: control (3) special, user-defined (4) plain; a byte-level control token spelled outside
  // the byte alphabet is a llama.cpp mislabel that transformers skips.
  for (size_t i = 0; i < n; ++i) {
    if (token_type[i] != 3 && token_type[i] != 4) continue;
    tok::AddedToken t;
    t.content = spec.tokens[i];
    t.id = static_cast<int32_t>(i);
    t.special = token_type[i] == 3;
    if (t.special && byte_level && std::string_view(spec.tokens[i]) != token_views[i]) continue;
    spec.added.push_back(std::move(t));
  }

  auto get_id = [&](const char* key, int32_t& out) -> Status {
    if (!gguf.find(key)) return Status::ok();
    auto v = gguf.get_int(key);
    if (!v) return v.status();
    if (*v < 0 || *v >= static_cast<int64_t>(n))
      return field_error(key, std::to_string(*v) + " is out of range [0, " + std::to_string(n) + ")");
    out = static_cast<int32_t>(*v);
    return Status::ok();
  };
  PUNICA_RETURN_IF_ERROR(get_id("tokenizer.ggml.bos_token_id", spec.bos_id));
  PUNICA_RETURN_IF_ERROR(get_id("tokenizer.ggml.eos_token_id", spec.eos_id));
  PUNICA_RETURN_IF_ERROR(get_id("tokenizer.ggml.eot_token_id", spec.eot_id));
  int32_t eom_id = -1;  // end of message (Llama-3.1 tool calls): a stop token too
  PUNICA_RETURN_IF_ERROR(get_id("tokenizer.ggml.eom_token_id", eom_id));
  if (eom_id >= 0) spec.stop_ids.push_back(eom_id);
  PUNICA_RETURN_IF_ERROR(get_id("tokenizer.ggml.unknown_token_id", spec.unk_id));
  PUNICA_RETURN_IF_ERROR(get_id("tokenizer.ggml.padding_token_id", spec.pad_id));
  // llama.cpp adds BOS to a SentencePiece vocabulary that does not say otherwise; transformers follows.
  spec.add_bos = !byte_level;
  if (gguf.find("tokenizer.ggml.add_bos_token")) {
    PUNICA_ASSIGN_OR_RETURN(spec.add_bos, gguf.get_bool("tokenizer.ggml.add_bos_token"));
  }
  if (gguf.find("tokenizer.ggml.add_eos_token")) {
    PUNICA_ASSIGN_OR_RETURN(spec.add_eos, gguf.get_bool("tokenizer.ggml.add_eos_token"));
  }
  // transformers also registers the tokens at these ids as special (e.g. <unk>, which is type 2, not 3).
  for (int32_t id : {spec.bos_id, spec.eos_id, spec.unk_id, spec.pad_id}) {
    if (id < 0) continue;
    bool known = std::any_of(spec.added.begin(), spec.added.end(), [&](const tok::AddedToken& t) { return t.id == id; });
    if (known) continue;
    tok::AddedToken t;
    t.content = spec.tokens[id];
    t.id = id;
    t.special = true;
    spec.added.push_back(std::move(t));
  }
  if (spec.add_bos && spec.bos_id >= 0) spec.prefix_ids.push_back(spec.bos_id);
  if (spec.add_eos && spec.eos_id >= 0) spec.suffix_ids.push_back(spec.eos_id);
  if (gguf.find("tokenizer.chat_template")) {
    PUNICA_ASSIGN_OR_RETURN(spec.chat_template, gguf.get_string("tokenizer.chat_template"));
  }
  return finish(std::move(spec));
}

}  // namespace punica
