// Causal GQA attention over a paged KV cache, for a ragged batch of requests (prefill chunks and decode
// tokens mixed). KV layout per layer: pool[page][slot_in_page][kv_head][head_dim] for K and for V.
//
// kv_append writes each new token's k/v row into its cache slot (flat index page * page_size + offset).
// attention_paged: request r owns query rows [row_start[r], row_start[r+1]) and a page table
// page_indices[page_table_start[r] ..); its KV holds kv_len[r] tokens (those of this step included). A query
// row at position p attends to the request's cache positions 0..p (causal). Query head h reads KV head
// h / (num_q_heads / num_kv_heads). Softmax in fp32 with scale = 1/sqrt(head_dim) (or `scale` if given).
#pragma once

#include <cstdint>

#include "punica/status.h"

namespace punica::ops {

struct KvAppendParams {
  const float* k = nullptr;       // [T, k_stride], first kv_dim columns
  int64_t k_stride = 0;
  const float* v = nullptr;       // [T, v_stride]
  int64_t v_stride = 0;
  const int64_t* slots = nullptr; // [T] flat slot index in the pool
  int64_t num_tokens = 0;
  int64_t kv_dim = 0;             // num_kv_heads * head_dim
  float* k_pool = nullptr;        // [num_slots_total, kv_dim]
  float* v_pool = nullptr;
  int64_t pool_slots = 0;         // num_pages * page_size (bound for slots[])
};

struct AttentionParams {
  const float* q = nullptr;       // [T, q_stride]
  int64_t q_stride = 0;
  float* out = nullptr;           // [T, out_stride], num_q_heads * head_dim columns
  int64_t out_stride = 0;
  const float* k_pool = nullptr;  // [num_pages * page_size, kv_dim]
  const float* v_pool = nullptr;
  int64_t pool_pages = 0;
  int64_t page_size = 0;
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 0.f;              // 0 -> 1/sqrt(head_dim)
  int64_t num_tokens = 0;         // T
  int64_t num_requests = 0;       // R
  const int32_t* row_start = nullptr;         // [R + 1]
  const int32_t* positions = nullptr;         // [T] position of each query row in its request
  const int32_t* kv_len = nullptr;            // [R]
  const int32_t* page_table_start = nullptr;  // [R + 1] into page_indices
  const int32_t* page_indices = nullptr;
};

Status kv_append_check(const KvAppendParams& p);
Status attention_paged_check(const AttentionParams& p);

}  // namespace punica::ops
