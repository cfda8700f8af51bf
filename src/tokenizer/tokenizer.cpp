#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "tokenizer/detokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/unicode_nfc.h"

namespace punica {

using tok::NormalizerStep;
using tok::PreTokenizerStep;

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos).append(to);
    pos = hit + from.size();
  }
  if (pos == 0) return;
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// Splits every word by a function that appends piece lengths.
template <typename F>
void split_words(std::vector<std::string>& words, F&& splitter) {
  std::vector<std::string> out;
  std::vector<size_t> lens;
  for (const std::string& w : words) {
    lens.clear();
    splitter(w, lens);
    size_t pos = 0;
    for (size_t len : lens) {
      if (len) out.emplace_back(w, pos, len);
      pos += len;
    }
  }
  words = std::move(out);
}

}  // namespace

Tokenizer::Tokenizer(tok::TokenizerSpec spec) : spec_(std::move(spec)) {
  raw_added_.build(spec_.added, false);
  normalized_added_.build(spec_.added, true);
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::finish(tok::TokenizerSpec spec) {
  const auto n = static_cast<int32_t>(spec.tokens.size());
  auto check_id = [&](int32_t id, const char* what) -> Status {
    if (id < -1 || id >= n)
      return invalid_file(spec.source + ": " + what + " " + std::to_string(id) + " is out of range [0, " +
                          std::to_string(n) + ")");
    return Status::ok();
  };
  PUNICA_RETURN_IF_ERROR(check_id(spec.bos_id, "bos token id"));
  PUNICA_RETURN_IF_ERROR(check_id(spec.eos_id, "eos token id"));
  PUNICA_RETURN_IF_ERROR(check_id(spec.eot_id, "eot token id"));
  PUNICA_RETURN_IF_ERROR(check_id(spec.unk_id, "unknown token id"));
  PUNICA_RETURN_IF_ERROR(check_id(spec.pad_id, "padding token id"));
  for (int32_t id : spec.stop_ids) PUNICA_RETURN_IF_ERROR(check_id(id, "eos_token_id"));
  for (int32_t id : spec.prefix_ids) PUNICA_RETURN_IF_ERROR(check_id(id, "post_processor token id"));
  for (int32_t id : spec.suffix_ids) PUNICA_RETURN_IF_ERROR(check_id(id, "post_processor token id"));
  spec.special.assign(spec.tokens.size(), 0);
  for (const tok::AddedToken& t : spec.added) {
    PUNICA_RETURN_IF_ERROR(check_id(t.id, "added token id"));
    if (t.special) spec.special[t.id] = 1;
  }
  // Stop ids: EOS, EOT, and the end-of-turn tokens of the chat formats the families use.
  auto add_stop = [&](int32_t id) {
    if (id >= 0 && std::find(spec.stop_ids.begin(), spec.stop_ids.end(), id) == spec.stop_ids.end())
      spec.stop_ids.push_back(id);
  };
  add_stop(spec.eos_id);
  add_stop(spec.eot_id);
  for (const tok::AddedToken& t : spec.added)
    for (std::string_view name : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|endoftext|>",
                                  "</s>", "<|end|>", "<end_of_turn>"})
      if (t.special && t.content == name) add_stop(t.id);
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(spec)));
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    fs::path json = fs::path(path) / "tokenizer.json";
    if (fs::exists(json, ec)) return load_tokenizer_json(json.string());
    for (const auto& entry : fs::directory_iterator(path, ec))
      if (entry.path().extension() == ".gguf") return load_gguf(entry.path().string());
    return not_found(path + ": no tokenizer.json or .gguf file in this folder");
  }
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) return load_gguf(path);
  return load_tokenizer_json(path);
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  for (const tok::AddedToken& t : spec_.added)
    if (t.content == token) return t.id;
  return spec_.bpe.find(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return spec_.tokens[id];
}

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < vocab_size() && spec_.special[id]; }

bool Tokenizer::is_stop(int32_t id) const {
  return std::find(spec_.stop_ids.begin(), spec_.stop_ids.end(), id) != spec_.stop_ids.end();
}

void Tokenizer::encode_text_piece(std::string_view text, bool at_start, std::vector<int32_t>& out) const {
  std::string normalized(text);
  for (const NormalizerStep& step : spec_.normalizer) {
    if (step.kind == NormalizerStep::kPrepend) {
      if (!normalized.empty()) normalized.insert(0, step.a);
    } else if (step.kind == NormalizerStep::kNfc) {
      normalized = tok::unicode_nfc(normalized);
    } else {
      replace_all(normalized, step.a, step.b);
    }
  }
  std::vector<tok::AddedTokenMatcher::Piece> pieces;
  if (normalized_added_.empty()) pieces.push_back({0, normalized.size(), -1});
  else pieces = normalized_added_.split(normalized);

  for (const auto& piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      continue;
    }
    std::vector<std::string> words{normalized.substr(piece.begin, piece.end - piece.begin)};
    bool first_word_at_start = at_start && piece.begin == 0;
    for (const PreTokenizerStep& step : spec_.pre_tokenizer) {
      switch (step.kind) {
        case PreTokenizerStep::kSplit:
          split_words(words, [&](std::string_view w, std::vector<size_t>& lens) {
            tok::split_by_pattern(step.pattern, w, lens);
          });
          break;
        case PreTokenizerStep::kDigits:
          split_words(words, [&](std::string_view w, std::vector<size_t>& lens) {
            tok::split_digits(w, step.individual_digits, lens);
          });
          break;
        case PreTokenizerStep::kByteLevel: {
          if (step.add_prefix_space)
            for (std::string& w : words)
              if (w.empty() || w[0] != ' ') w = " " + w;
          if (step.use_regex)
            split_words(words, [&](std::string_view w, std::vector<size_t>& lens) {
              tok::split_by_pattern(step.pattern, w, lens);
            });
          for (std::string& w : words) {
            std::string mapped;
            mapped.reserve(w.size() * 2);
            for (char c : w) tok::utf8_append(mapped, tok::byte_level_char(static_cast<uint8_t>(c)));
            w = std::move(mapped);
          }
          break;
        }
        case PreTokenizerStep::kMetaspace: {
          for (size_t k = 0; k < words.size(); ++k) {
            std::string& w = words[k];
            replace_all(w, " ", step.replacement);
            bool prepend = step.prepend == PreTokenizerStep::kAlways ||
                           (step.prepend == PreTokenizerStep::kFirst && k == 0 && first_word_at_start);
            if (prepend && w.compare(0, step.replacement.size(), step.replacement) != 0)
              w.insert(0, step.replacement);
          }
          if (step.split) {
            // Split before every replacement character (MergedWithNext).
            split_words(words, [&](std::string_view w, std::vector<size_t>& lens) {
              size_t start = 0;
              for (size_t pos = w.find(step.replacement, 1); pos != std::string_view::npos;
                   pos = w.find(step.replacement, pos + 1)) {
                lens.push_back(pos - start);
                start = pos;
              }
              lens.push_back(w.size() - start);
            });
          }
          break;
        }
      }
      first_word_at_start = first_word_at_start && !words.empty();
    }
    for (const std::string& w : words) spec_.bpe.encode_word(w, out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string valid = tok::utf8_make_valid(text);
  std::vector<int32_t> out;
  out.reserve(valid.size() / 3 + 4);
  if (add_special_tokens) out.insert(out.end(), spec_.prefix_ids.begin(), spec_.prefix_ids.end());
  if (raw_added_.empty()) {
    encode_text_piece(valid, true, out);
  } else {
    for (const auto& piece : raw_added_.split(valid)) {
      if (piece.id >= 0) out.push_back(piece.id);
      else encode_text_piece(std::string_view(valid).substr(piece.begin, piece.end - piece.begin), piece.begin == 0, out);
    }
  }
  if (add_special_tokens) out.insert(out.end(), spec_.suffix_ids.begin(), spec_.suffix_ids.end());
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  Detokenizer d(*this, skip_special_tokens);
  std::string out;
  for (int32_t id : ids) out += d.push(id);
  out += d.finish();
  return out;
}

}  // namespace punica
