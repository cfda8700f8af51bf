// check() of the dense op families (linear, embedding, norm, rope, attention, element-wise): shapes and
// pointers that can be validated without reading the (possibly device) arrays.
#include <cstring>
#include <string>

#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace punica::ops {
namespace {

Status bad(const char* op, const std::string& what) { return invalid_argument(std::string(op) + ": " + what); }

Status check_weight(const char* op, const LinearWeight& w) {
  if (!w.data) return bad(op, "weight data is null");
  if (w.rows < 1 || w.cols < 1) return bad(op, "weight rows and cols must be >= 1");
  const int64_t be = linear_weight_block_elems(w.format);
  if (w.cols % be != 0)
    return bad(op, std::string("weight cols ") + std::to_string(w.cols) + " not a multiple of the " +
                       linear_weight_format_name(w.format) + " block size " + std::to_string(be));
  if (w.row_bytes != w.cols / be * linear_weight_block_bytes(w.format))
    return bad(op, "weight row_bytes " + std::to_string(w.row_bytes) + " does not match cols and format");
  return Status::ok();
}

}  // namespace

int64_t linear_weight_block_elems(LinearWeightFormat f) {
  switch (f) {
    case LinearWeightFormat::kF32: case LinearWeightFormat::kF16: return 1;
    case LinearWeightFormat::kQ4_0: case LinearWeightFormat::kQ4_1: case LinearWeightFormat::kQ8_0: return 32;
    case LinearWeightFormat::kQ4_K: case LinearWeightFormat::kQ6_K: return 256;
  }
  return 1;
}

int64_t linear_weight_block_bytes(LinearWeightFormat f) {
  switch (f) {
    case LinearWeightFormat::kF32: return 4;
    case LinearWeightFormat::kF16: return 2;
    case LinearWeightFormat::kQ4_0: return 18;    // f16 d, 16 bytes of nibbles
    case LinearWeightFormat::kQ4_1: return 20;    // f16 d, f16 m, 16 bytes of nibbles
    case LinearWeightFormat::kQ8_0: return 34;    // f16 d, 32 int8
    case LinearWeightFormat::kQ4_K: return 144;   // f16 d, f16 dmin, 12 bytes scales, 128 bytes nibbles
    case LinearWeightFormat::kQ6_K: return 210;   // 128 ql, 64 qh, 16 int8 scales, f16 d
  }
  return 4;
}

const char* linear_weight_format_name(LinearWeightFormat f) {
  switch (f) {
    case LinearWeightFormat::kF32: return "F32";
    case LinearWeightFormat::kF16: return "F16";
    case LinearWeightFormat::kQ4_0: return "Q4_0";
    case LinearWeightFormat::kQ4_1: return "Q4_1";
    case LinearWeightFormat::kQ8_0: return "Q8_0";
    case LinearWeightFormat::kQ4_K: return "Q4_K";
    case LinearWeightFormat::kQ6_K: return "Q6_K";
  }
  return "?";
}

bool linear_weight_format_from_name(const char* name, LinearWeightFormat* out) {
  static const LinearWeightFormat all[] = {LinearWeightFormat::kF32,  LinearWeightFormat::kF16,
                                           LinearWeightFormat::kQ4_0, LinearWeightFormat::kQ4_1,
                                           LinearWeightFormat::kQ8_0, LinearWeightFormat::kQ4_K,
                                           LinearWeightFormat::kQ6_K};
  for (LinearWeightFormat f : all) {
    if (std::strcmp(name, linear_weight_format_name(f)) == 0) {
      *out = f;
      return true;
    }
  }
  return false;
}

Status linear_check(const LinearParams& p) {
  PUNICA_RETURN_IF_ERROR(check_weight("linear", p.w));
  if (p.num_tokens < 0) return bad("linear", "num_tokens must be >= 0");
  if (p.x_stride < p.w.cols) return bad("linear", "x_stride must be >= weight cols");
  if (p.y_stride < p.w.rows) return bad("linear", "y_stride must be >= weight rows");
  if (p.num_tokens > 0 && (!p.x || !p.y)) return bad("linear", "x and y are required");
  return Status::ok();
}

Status embedding_check(const EmbeddingParams& p) {
  PUNICA_RETURN_IF_ERROR(check_weight("embedding", p.table));
  if (p.num_tokens < 0) return bad("embedding", "num_tokens must be >= 0");
  if (p.num_tokens > 0 && (!p.ids || !p.out)) return bad("embedding", "ids and out are required");
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    if (p.ids[t] < 0 || p.ids[t] >= p.table.rows)
      return bad("embedding", "token id " + std::to_string(p.ids[t]) + " at row " + std::to_string(t) +
                                  " outside the vocabulary [0, " + std::to_string(p.table.rows) + ")");
  }
  return Status::ok();
}

Status rms_norm_check(const RmsNormParams& p) {
  if (p.dim < 1 || p.num_tokens < 0) return bad("rms_norm", "dim must be >= 1 and num_tokens >= 0");
  if (p.num_tokens > 0 && (!p.x || !p.y || !p.weight)) return bad("rms_norm", "x, y and weight are required");
  if (!(p.eps >= 0.f)) return bad("rms_norm", "eps must be >= 0");
  return Status::ok();
}

Status rope_check(const RopeParams& p) {
  if (p.head_dim < 2 || p.head_dim % 2 != 0) return bad("rope", "head_dim must be even and >= 2");
  if (p.num_q_heads < 1 || p.num_kv_heads < 0 || p.num_tokens < 0) return bad("rope", "bad head or token count");
  if (p.q_stride < p.num_q_heads * p.head_dim || (p.num_kv_heads > 0 && p.k_stride < p.num_kv_heads * p.head_dim))
    return bad("rope", "q_stride/k_stride smaller than heads * head_dim");
  if (p.num_tokens > 0 && (!p.q || !p.cos || !p.sin || (p.num_kv_heads > 0 && !p.k)))
    return bad("rope", "q, k, cos and sin are required");
  return Status::ok();
}

Status kv_append_check(const KvAppendParams& p) {
  if (p.kv_dim < 1 || p.num_tokens < 0) return bad("kv_append", "kv_dim must be >= 1, num_tokens >= 0");
  if (p.k_stride < p.kv_dim || p.v_stride < p.kv_dim) return bad("kv_append", "k/v stride < kv_dim");
  if (p.num_tokens > 0 && (!p.k || !p.v || !p.slots || !p.k_pool || !p.v_pool))
    return bad("kv_append", "k, v, slots and pools are required");
  return Status::ok();
}

Status attention_paged_check(const AttentionParams& p) {
  if (p.head_dim < 1 || p.num_q_heads < 1 || p.num_kv_heads < 1) return bad("attention", "bad head sizes");
  if (p.num_q_heads % p.num_kv_heads != 0) return bad("attention", "num_q_heads must be a multiple of num_kv_heads");
  if (p.page_size < 1 || p.pool_pages < 0) return bad("attention", "page_size must be >= 1");
  if (p.q_stride < p.num_q_heads * p.head_dim || p.out_stride < p.num_q_heads * p.head_dim)
    return bad("attention", "q/out stride smaller than num_q_heads * head_dim");
  if (p.num_tokens < 0 || p.num_requests < 0) return bad("attention", "negative token or request count");
  if (p.num_requests > 0 && (!p.row_start || !p.kv_len || !p.page_table_start || !p.positions))
    return bad("attention", "row_start, positions, kv_len and page_table_start are required");
  if (p.num_tokens > 0 && (!p.q || !p.out || !p.k_pool || !p.v_pool || !p.page_indices))
    return bad("attention", "q, out, pools and page_indices are required");
  return Status::ok();
}

Status silu_mul_check(const SiluMulParams& p) {
  if (p.n < 1 || p.num_tokens < 0) return bad("silu_mul", "n must be >= 1");
  if (p.num_tokens > 0 && (!p.gate || !p.up || !p.out)) return bad("silu_mul", "gate, up and out are required");
  return Status::ok();
}

Status add_check(const AddParams& p) {
  if (p.n < 0) return bad("add", "n must be >= 0");
  if (p.n > 0 && (!p.x || !p.y)) return bad("add", "x and y are required");
  return Status::ok();
}

Status gather_rows_check(const GatherRowsParams& p) {
  if (p.dim < 1 || p.num_rows < 0 || p.num_tokens < 0) return bad("gather_rows", "bad sizes");
  if (p.num_rows > 0 && (!p.x || !p.rows || !p.out)) return bad("gather_rows", "x, rows and out are required");
  return Status::ok();
}

Status log_softmax_check(const LogSoftmaxParams& p) {
  if (p.n < 1 || p.num_rows < 0) return bad("log_softmax", "n must be >= 1");
  if (p.num_rows > 0 && (!p.x || !p.out)) return bad("log_softmax", "x and out are required");
  return Status::ok();
}

}  // namespace punica::ops
