// Embedding gather: out[t, :] = table[ids[t], :]. The table may be quantised (a LinearWeight whose rows are
// the vocabulary), so a tied lm_head and the embedding share one stored tensor.
#pragma once

#include <cstdint>

#include "ops/linear.h"

namespace punica::ops {

struct EmbeddingParams {
  LinearWeight table;           // [vocab, dim]
  const int32_t* ids = nullptr; // [T], each in [0, vocab)
  int64_t num_tokens = 0;
  float* out = nullptr;         // [T, table.cols]
};

Status embedding_check(const EmbeddingParams& p);

}  // namespace punica::ops
