// Replays the committed fuzz corpora (fuzz/corpus/<parser>/) and a few thousand deterministic mutations of
// them through the same entry points the libFuzzer targets use, so `make test` (and its ASan run) keeps
// the parsers honest without clang or libFuzzer.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "format_test_util.h"
#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"

namespace punica {
namespace {

using FuzzFn = int (*)(const uint8_t*, size_t);

std::vector<std::vector<uint8_t>> load_corpus(const std::string& parser) {
  std::vector<std::vector<uint8_t>> seeds;
  const std::filesystem::path dir = std::filesystem::path(PUNICA_SOURCE_DIR) / "fuzz" / "corpus" / parser;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& p : files) seeds.push_back(test::read_all(p.string()));
  return seeds;
}

// One random edit of the kinds that break parsers: flipped bits, interesting integers written over a
// length or offset field, truncation, duplicated or deleted ranges.
void mutate(std::vector<uint8_t>& b, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
  static const uint64_t kInteresting[] = {0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff,
                                          uint64_t{1} << 32, uint64_t{1} << 62, ~uint64_t{0}, 31, 33, 4, 5};
  switch (rng() % 6) {
    case 0:
      if (!b.empty()) b[pick(b.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
      break;
    case 1:
      if (!b.empty()) b[pick(b.size())] = static_cast<uint8_t>(rng());
      break;
    case 2: {   // an interesting little-endian integer over 1..8 bytes
      if (b.size() < 8) break;
      const size_t at = pick(b.size() - 7);
      const uint64_t v = kInteresting[pick(std::size(kInteresting))];
      const size_t width = size_t{1} << (rng() % 4);
      std::memcpy(b.data() + at, &v, width);
      break;
    }
    case 3:
      b.resize(pick(b.size() + 1));
      break;
    case 4: {   // delete a range
      if (b.empty()) break;
      const size_t at = pick(b.size()), len = std::min(b.size() - at, pick(64) + 1);
      b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + len));
      break;
    }
    case 5: {   // duplicate a range
      if (b.empty()) break;
      const size_t at = pick(b.size()), len = std::min(b.size() - at, pick(64) + 1);
      std::vector<uint8_t> chunk(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + len));
      b.insert(b.begin() + static_cast<long>(pick(b.size())), chunk.begin(), chunk.end());
      break;
    }
  }
}

void replay(const std::string& parser, FuzzFn fn, int mutations_per_seed) {
  const auto seeds = load_corpus(parser);
  ASSERT_GE(seeds.size(), 3u) << "corpus fuzz/corpus/" << parser << " is missing";
  std::mt19937_64 rng(20240611);
  for (const auto& s : seeds) {
    fn(s.data(), s.size());
    for (int i = 0; i < mutations_per_seed; ++i) {
      std::vector<uint8_t> m = s;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) mutate(m, rng);
      fn(m.data(), m.size());   // must return, not crash or trip a sanitizer
    }
  }
}

TEST(FuzzCorpus, Gguf) { replay("gguf", fuzz_gguf_one_input, 300); }
TEST(FuzzCorpus, Safetensors) { replay("safetensors", fuzz_safetensors_one_input, 600); }
TEST(FuzzCorpus, HfConfig) { replay("hf_config", fuzz_hf_config_one_input, 600); }

}  // namespace
}  // namespace punica
