// Plain command-line front end of the LoRA op oracle (no GTest), for scripts/gpu_check.sh and
// compute-sanitizer runs:  punica_lora_oracle [--dtype f16|bf16|all] [--reduced] [--seed N] [--filter S]
//                          [--cluster 0|1|2|4]  (lora_add's cluster kernel: off, or forced with token tiles
//                                                of 16 / 32 / 64 rows; default: chosen by shape)
//                          [--stream 0|1]  (the streaming decode kernels: off, or forced for every shape)
//                          [--prefill 0|1]  (lora_add's prefill kernel: off, or forced wherever it can run)
//                          [--astream 0|1]  (lora_add's adapter-streaming decode kernel: off, or forced wherever it
//                                            can run)
// The environment's PUNICA_LORA_CS (16 / 8 / 4 / 2) forces the cluster kernel's cluster size where it fits (the
// line printed first names it). Exit code 0 only if every case passes.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/cuda/lora/lora_cuda.h"
#include "lora_oracle.h"

int main(int argc, char** argv) {
  using namespace punica;
  std::string dtype = "all", filter;
  bool reduced = false;
  uint64_t seed = 20261127;
  int cluster = -1, stream = -1, prefill = -1, astream = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--dtype" && i + 1 < argc) dtype = argv[++i];
    else if (a == "--reduced") reduced = true;
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "--cluster" && i + 1 < argc) cluster = std::atoi(argv[++i]);
    else if (a == "--stream" && i + 1 < argc) stream = std::atoi(argv[++i]);
    else if (a == "--prefill" && i + 1 < argc) prefill = std::atoi(argv[++i]);
    else if (a == "--astream" && i + 1 < argc) astream = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--dtype f16|bf16|all] [--reduced] [--seed N] [--filter S] [--cluster 0|1|2|4] [--stream 0|1] [--prefill 0|1] [--astream 0|1]\n", argv[0]);
      return 2;
    }
  }
  if (cluster >= 0) cuda::lora_set_cluster_override(cluster);
  if (stream >= 0) cuda::lora_set_stream_override(stream);
  if (prefill >= 0) cuda::lora_set_prefill_override(prefill);
  if (astream >= 0) cuda::lora_set_adapter_stream_override(astream);
  const char* cs = std::getenv("PUNICA_LORA_CS");
  std::printf("lora oracle: seed %llu%s, streaming kernels %s, prefill kernel %s, adapter-streaming kernel %s, "
              "cluster kernel %s%s%s\n",
              static_cast<unsigned long long>(seed), reduced ? " (reduced)" : "",
              stream < 0 ? "by shape" : stream == 0 ? "off" : "forced",
              prefill < 0 ? "by shape" : prefill == 0 ? "off" : "forced",
              astream < 0 ? "by shape" : astream == 0 ? "off" : "forced",
              cluster < 0 ? "by shape (default)"
              : cluster == 0 ? "off"
                             : ("forced, token tiles of " + std::to_string(16 * cluster) + " rows").c_str(),
              cs ? ", cluster size forced to " : "", cs ? cs : "");
  oracle::LoraOracle o;
  int pass = 0, fail = 0;
  for (DType t : {DType::kF16, DType::kBF16}) {
    if (dtype != "all" && dtype != dtype_name(t)) continue;
    for (const auto& c : oracle::lora_oracle_cases(t, reduced, seed)) {
      if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
      const auto r = o.run(c);
      std::printf("%s\n", r.line.c_str());
      std::fflush(stdout);
      (r.pass ? pass : fail)++;
    }
  }
  std::printf("lora oracle: %d passed, %d failed\n", pass, fail);
  return fail == 0 ? 0 : 1;
}
