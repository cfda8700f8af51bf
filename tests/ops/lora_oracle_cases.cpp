// The oracle's case list: the shapes that break LoRA kernels (DESIGN.md section 5) crossed with the
// adapter popularity distributions of the Punica paper plus the adversarial ones.
//
// The CPU reference is double loops, so big cases check a strided subset of tokens (check_stride, plus the
// last token): every token of every case up to 133 tokens; every 16th token of 2048-token cases with
// h >= 8192 or rank >= 64, every 4th of the other 2048-token cases; every 8th of the 4 x 512 prefill and
// the 2048-token mixed-rank case; every 4th of the 1024-token exact case; every 64th of the 16k case.
// Unchecked tokens are still checked for writes outside their adapted columns (all of y, bit for bit),
// and every v entry outside the written ranks for its poison.
// Tolerance (lora_oracle.cpp): y within 3e-2 * rms(reference delta) + 5e-3 * |ref| + 1 ulp of the dtype,
// NMSE of the delta <= 1e-5; v within 1e-4 * (|v| + 1); exact-integer cases bit for bit.

#include <algorithm>
#include <cmath>
#include <random>

#include "lora_oracle.h"

namespace punica::oracle {
namespace {

enum class Pop { kDistinct, kUniform, kZipf, kIdentical, kSplit1, kNoAdapterRows };

const char* pop_name(Pop p) {
  switch (p) {
    case Pop::kDistinct: return "distinct";
    case Pop::kUniform: return "uniform";
    case Pop::kZipf: return "zipf1.5";
    case Pop::kIdentical: return "identical";
    case Pop::kSplit1: return "split[1,n-1]";
    case Pop::kNoAdapterRows: return "no-adapter-rows";
  }
  return "?";
}

// Segments of n tokens sorted by slot, as the batch planner makes them; returns the number of slots used.
int make_segments(Pop pop, int n, std::mt19937_64& rng, std::vector<int>& len, std::vector<int>& slot) {
  std::vector<int> tok;  // slot per token
  int slots = 1;
  switch (pop) {
    case Pop::kDistinct:
      slots = n;
      for (int t = 0; t < n; ++t) tok.push_back(t);
      break;
    case Pop::kUniform: {
      slots = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
      for (int t = 0; t < n; ++t) tok.push_back(t % slots);
      break;
    }
    case Pop::kZipf: {
      slots = std::max(1, n);
      std::vector<double> w(slots);
      for (int k = 0; k < slots; ++k) w[k] = 1.0 / std::pow(k + 1.0, 1.5);
      std::discrete_distribution<int> dist(w.begin(), w.end());
      for (int t = 0; t < n; ++t) tok.push_back(dist(rng));
      break;
    }
    case Pop::kIdentical:
      for (int t = 0; t < n; ++t) tok.push_back(0);
      break;
    case Pop::kSplit1:
      slots = 2;
      for (int t = 0; t < n; ++t) tok.push_back(t == 0 ? 0 : 1);
      break;
    case Pop::kNoAdapterRows:
      slots = std::max(1, (n + 1) / 2);
      for (int t = 0; t < n; ++t) tok.push_back(t < n / 2 ? -1 : t - n / 2);
      break;
  }
  std::sort(tok.begin(), tok.end());
  len.clear();
  slot.clear();
  for (int t = 0; t < n; ++t) {
    if (t == 0 || tok[t] != tok[t - 1]) {
      len.push_back(0);
      slot.push_back(tok[t]);
    }
    ++len.back();
  }
  return slots;
}

LoraOracleCase base_case(DType dtype, uint64_t seed, const std::string& name) {
  LoraOracleCase c;
  c.dtype = dtype;
  c.seed = seed;
  c.name = name;
  return c;
}

void set_uniform_rank(LoraOracleCase& c, int r) {
  c.rank.assign(c.h_out.size(), std::vector<int>(c.num_slots, r));
  c.v_rank_stride = r;
}

void set_mixed_ranks(LoraOracleCase& c, std::mt19937_64& rng) {
  c.rank.assign(c.h_out.size(), std::vector<int>(c.num_slots, 0));
  int mx = 1;
  for (auto& rr : c.rank)
    for (auto& r : rr) {
      r = 1 + static_cast<int>(rng() % 128);
      mx = std::max(mx, r);
    }
  c.rank[0][0] = 128;  // the extremes are always there
  if (c.num_slots > 1) c.rank[0][1] = 1;
  c.v_rank_stride = 128;
  (void)mx;
}

}  // namespace

std::vector<LoraOracleCase> lora_oracle_cases(DType dtype, bool reduced, uint64_t seed) {
  std::vector<LoraOracleCase> out;
  std::mt19937_64 rng(seed);
  uint64_t n = 0;
  auto next_seed = [&] { return seed * 1000003ull + (++n); };
  const Pop pops[] = {Pop::kDistinct, Pop::kUniform, Pop::kZipf, Pop::kIdentical, Pop::kSplit1, Pop::kNoAdapterRows};
  const int hidden[] = {2048, 4096, 5120, 8192, 11008, 14336};
  const int ranks[] = {16, 64, 8, 32, 128, 1};
  const std::vector<int> tokens = reduced ? std::vector<int>{1, 3, 7, 19, 133} : std::vector<int>{1, 3, 7, 19, 133, 2048};
  const LoraPath paths[] = {LoraPath::kFused, LoraPath::kSeparate, LoraPath::kFusedGraph};

  // 1. popularity x token count, hidden sizes and ranks rotating through the list
  int k = 0;
  for (int T : tokens) {
    for (Pop pop : pops) {
      const int h = reduced ? 2048 : hidden[k % 6];
      const int h_out = reduced ? 1024 : hidden[(k + 2) % 6];
      LoraOracleCase c = base_case(dtype, next_seed(), std::string(pop_name(pop)) + " T=" + std::to_string(T));
      c.h_in = h;
      c.h_out = {h_out};
      c.num_slots = make_segments(pop, T, rng, c.seg_len, c.seg_slot);
      set_uniform_rank(c, ranks[k % 6]);
      c.path = paths[k % 3];
      if (T >= 2048) c.check_stride = (h >= 8192 || h_out >= 8192 || c.v_rank_stride >= 64) ? 16 : 4;
      out.push_back(c);
      ++k;
    }
  }

  // 2. decode and prefill shapes of the benchmark, both ranks, all three paths
  for (int r : {16, 64}) {
    for (LoraPath p : paths) {
      LoraOracleCase c = base_case(dtype, next_seed(), "prefill 4x512 r=" + std::to_string(r));
      c.h_in = reduced ? 1024 : 4096;
      c.h_out = {reduced ? 1024 : 4096};
      const int len = reduced ? 80 : 512;
      c.seg_len = {len, len, len, len};
      c.seg_slot = {0, 1, 2, 3};
      c.num_slots = 4;
      set_uniform_rank(c, r);
      c.path = p;
      c.check_stride = reduced ? 1 : 8;
      out.push_back(c);
    }
  }

  // 3. mixed ranks 1..128 in one batch, with empty segments, no-adapter segments, tokens outside segments
  for (int T : reduced ? std::vector<int>{19} : std::vector<int>{19, 133, 2048}) {
    LoraOracleCase c = base_case(dtype, next_seed(), "mixed-ranks+empty T=" + std::to_string(T));
    c.h_in = reduced ? 2048 : 4096;
    c.h_out = {reduced ? 1024 : 5120};
    make_segments(Pop::kZipf, T - 2, rng, c.seg_len, c.seg_slot);
    c.num_slots = 1;
    for (int s : c.seg_slot) c.num_slots = std::max(c.num_slots, s + 2);
    // empty segments between and around the real ones, and one no-adapter segment
    std::vector<int> len, slot;
    for (size_t g = 0; g < c.seg_len.size(); ++g) {
      if (g % 2 == 0) {
        len.push_back(0);
        slot.push_back(static_cast<int>(g % c.num_slots));
      }
      len.push_back(c.seg_len[g]);
      slot.push_back(g == 1 ? -1 : c.seg_slot[g]);
    }
    len.push_back(0);
    slot.push_back(0);
    c.seg_len = len;
    c.seg_slot = slot;
    c.lead_tokens = 1;
    c.tail_tokens = 1;
    set_mixed_ranks(c, rng);
    c.path = T == 133 ? LoraPath::kSeparate : LoraPath::kFused;
    if (T >= 2048) c.check_stride = 8;
    out.push_back(c);
  }

  // 4. multi-slice: q|k|v with GQA widths, gate|up; one slot adapts only some slices
  struct Multi {
    const char* name;
    int h_in;
    std::vector<int> h_out;
  };
  const std::vector<Multi> multis =
      reduced ? std::vector<Multi>{{"qkv-gqa", 1024, {1024, 256, 256}}, {"gate|up", 1024, {2048, 2048}}}
              : std::vector<Multi>{{"qkv-gqa", 4096, {4096, 1024, 1024}}, {"gate|up", 4096, {11008, 11008}},
                                   {"qkv-gqa-14336", 8192, {8192, 1024, 1024}}};
  int mi = 0;
  for (const Multi& m : multis) {
    for (int T : reduced ? std::vector<int>{7} : std::vector<int>{7, 133}) {
      LoraOracleCase c = base_case(dtype, next_seed(), std::string(m.name) + " T=" + std::to_string(T));
      c.h_in = m.h_in;
      c.h_out = m.h_out;
      c.num_slots = make_segments(Pop::kUniform, T, rng, c.seg_len, c.seg_slot);
      set_uniform_rank(c, (mi++ % 2) ? 64 : 16);
      c.rank[0][0] = 0;  // slot 0 adapts only the later slices
      if (c.h_out.size() > 2 && c.num_slots > 1) c.rank[2][1] = 0;
      c.path = paths[mi % 3];
      out.push_back(c);
    }
  }

  // 5. exact small-integer mode: decode and prefill, both paths
  for (int T : reduced ? std::vector<int>{7, 70} : std::vector<int>{7, 133, 1024}) {
    for (LoraPath p : {LoraPath::kFused, LoraPath::kSeparate}) {
      LoraOracleCase c = base_case(dtype, next_seed(), "exact-int T=" + std::to_string(T));
      c.exact = true;
      c.h_in = reduced ? 1024 : 4096;
      c.h_out = {reduced ? 512 : 4096};
      c.num_slots = make_segments(T > 100 ? Pop::kUniform : Pop::kDistinct, T, rng, c.seg_len, c.seg_slot);
      set_uniform_rank(c, T > 100 ? 64 : 16);
      c.path = p;
      if (T >= 1024) c.check_stride = 4;
      out.push_back(c);
    }
  }

  // 6. NaN/Inf parity: non-finite x in adapted and unadapted rows; then the same with ranks below the padded rank (odd
  // ones too): a kernel that lets x's Inf reach the zero-padded ranks (Inf * 0) turns the whole y row into NaN where
  // the reference gives +-Inf
  for (bool low_ranks : {false, true}) {
    for (int T : {7, 133}) {
      LoraOracleCase c =
          base_case(dtype, next_seed(), std::string(low_ranks ? "nan-inf r<16" : "nan-inf") + " T=" + std::to_string(T));
      c.nonfinite = true;
      c.h_in = 2048;
      c.h_out = {2048};
      c.num_slots = make_segments(Pop::kNoAdapterRows, T, rng, c.seg_len, c.seg_slot);
      set_uniform_rank(c, 16);
      if (low_ranks)
        for (int s = 0; s < c.num_slots; ++s) c.rank[0][s] = s % 2 ? 5 : 12;
      out.push_back(c);
    }
  }

  // 7. hidden sizes that are multiples of 8 but not of the kernels' k-step (64..256) or column tile
  for (int T : {7, 133}) {
    for (int r : {8, 48}) {
      LoraOracleCase c = base_case(dtype, next_seed(), "h%8-only T=" + std::to_string(T) + " r=" + std::to_string(r));
      c.h_in = 4104;
      c.h_out = {1032, 520};
      c.num_slots = make_segments(Pop::kUniform, T, rng, c.seg_len, c.seg_slot);
      set_uniform_rank(c, r);
      c.path = T == 7 ? LoraPath::kFused : LoraPath::kSeparate;
      out.push_back(c);
    }
  }

  // 8. decode batches of many adapters (the adapter-streaming kernel's shapes, eleventh session) and B pointers off a
  // 16-byte boundary: one-token segments at ranks 16 and 100 (48 of them: 2-CTA clusters there), a tiny projection
  // (40 -> 24: CTAs of an 8-CTA cluster with no k or column range), and unaligned B on each decode path
  {
    struct Decode {
      const char* name;
      Pop pop;
      int T, h_in, h_out, rank;
      bool b_unaligned;
    };
    const int hh = reduced ? 1024 : 4096;
    const Decode decodes[] = {{"one-token r=100", Pop::kDistinct, 48, hh, hh, 100, false},
                              {"tiny 40->24", Pop::kDistinct, 3, 40, 24, 16, false},
                              {"b-unaligned distinct", Pop::kDistinct, 133, hh, hh, 16, true},
                              {"b-unaligned uniform", Pop::kUniform, 7, hh, hh, 16, true},
                              {"b-unaligned identical", Pop::kIdentical, 19, hh, hh, 64, true},
                              {"b-unaligned identical", Pop::kIdentical, 133, hh, hh, 16, true}};
    for (const Decode& dc : decodes) {
      LoraOracleCase c = base_case(dtype, next_seed(), std::string(dc.name) + " T=" + std::to_string(dc.T));
      c.h_in = dc.h_in;
      c.h_out = {dc.h_out};
      c.num_slots = make_segments(dc.pop, dc.T, rng, c.seg_len, c.seg_slot);
      set_uniform_rank(c, dc.rank);
      c.b_unaligned = dc.b_unaligned;
      out.push_back(c);
    }
  }

  // 9. the largest token count the kernels promise (16k), one adapter per 4k tokens, subsampled
  if (!reduced) {
    LoraOracleCase c = base_case(dtype, next_seed(), "16k tokens");
    c.h_in = 4096;
    c.h_out = {4096};
    c.seg_len = {4096, 4096, 4096, 4096};
    c.seg_slot = {3, 0, -1, 1};
    c.num_slots = 4;
    set_uniform_rank(c, 32);
    c.check_stride = 64;
    out.push_back(c);
  }
  return out;
}

}  // namespace punica::oracle
