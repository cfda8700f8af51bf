// Host side of the CUDA LoRA ops: validation, the choice of algorithm by shape, and the launches.
// Nothing here touches device memory or synchronises, so every call can be captured in a CUDA graph.
#include "backends/cuda/lora/lora_cuda.h"

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"

namespace punica::cuda {
namespace {

using lora_detail::ExpandArgs;
using lora_detail::LaunchShape;
using lora_detail::ShrinkArgs;

constexpr size_t kSyncBytes = 256;            // the fused decode kernel's counters
constexpr int kAccFloats = 64 * 1024;         // per accumulator buffer of the fused decode kernel (x2)
constexpr size_t kAccBytes = 2 * sizeof(float) * kAccFloats;
constexpr size_t kPartialBytes = size_t{8} << 20;
constexpr int kMaxGridY = 65535;
constexpr int kMaxBlocksPerCall = 1 << 20;  // caps the strided token-tile loop's grid

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

struct DeviceFacts {
  int sms = 132;
  bool pdl = false;  // Programmatic Dependent Launch needs sm_90
};

Status device_facts(DeviceFacts* f) {
  int dev = 0;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaGetDevice(&dev));
  PUNICA_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&f->sms, cudaDevAttrMultiProcessorCount, dev));
  int major = 0;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  f->pdl = major >= 9;
  return Status::ok();
}

int round_up(int a, int b) { return (a + b - 1) / b * b; }
int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The longest segment that carries an adapter, the length every plan below is sized by: segments without one
// are skipped by every kernel (a decode batch next to a 64-token run without adapter is still a decode batch).
int adapted_len(const ops::LoraSegments& seg) {
  return seg.max_adapted_seg_len > 0 ? std::min(seg.max_adapted_seg_len, seg.max_seg_len) : seg.max_seg_len;
}

// Decode batches use 16-row tiles, prefill-length segments 64-row tiles. One long segment among many short
// ones (a Zipf batch, or decode rows next to a 64-row run without adapter) does not make a prefill: every
// segment gets the tile height, so 64-row tiles there multiplied the work of the one-token segments (H100:
// zipf B = 128 r = 16 took 25 us with 64-row tiles, 14.5 us with 16-row tiles).
int pick_tile_rows(const ops::LoraSegments& seg) {
  const int avg = seg.num_tokens / std::max(1, seg.num_segments);
  return adapted_len(seg) > 32 && (avg >= 16 || adapted_len(seg) > 128) ? 64 : 16;
}

int padded_rank(int v_rank_stride) {
  const int rp = round_up(v_rank_stride, 16);
  return rp <= 16 ? 16 : rp <= 32 ? 32 : rp <= 64 ? 64 : 128;
}

// Token tiles of tm rows that carry an adapter: at most ceil(adapted_len / tm) per adapted segment, and at
// most one partial tile per adapted segment plus the tokens' full tiles. The second bound matters when the
// caller does not give max_adapted_seg_len and the longest segment has no adapter (decode rows next to a
// 64-token run without one: 4x fewer tiles than the first bound, which had sized split-K 4x too small).
int64_t adapted_tiles(const ops::LoraSegments& seg, int tm) {
  const int64_t segs = std::max(1, seg.num_adapted_segments);
  return std::max<int64_t>(1, std::min<int64_t>(segs * ceil_div(adapted_len(seg), tm), segs + seg.num_tokens / tm));
}

// Rows a 16-row decode token tile can hold: min(16, longest adapted segment). It sizes the streaming
// kernels' staged x rows and their instances for tiles of more than 8 rows, and the partials an expand
// block sums.
int decode_tile_rows(const ops::LoraSegments& seg) { return std::min(16, adapted_len(seg)); }

// Token tiles per segment in the grid (blocks loop over the rest).
int grid_tiles_y(const ops::LoraSegments& seg, int tm, int blocks_per_tile) {
  const int tiles = std::max(1, ceil_div(adapted_len(seg), tm));
  const int64_t per_y = static_cast<int64_t>(blocks_per_tile) * std::max(1, seg.num_segments);
  const int cap = static_cast<int>(std::max<int64_t>(1, kMaxBlocksPerCall / per_y));
  return std::min({tiles, cap, kMaxGridY});
}

Status check_dtype(const char* op, DType t) {
  if (t != DType::kF16 && t != DType::kBF16)
    return invalid_argument(std::string(op) + ": the CUDA backend takes f16 or bf16, got " +
                            std::string(dtype_name(t)));
  return Status::ok();
}

Status check_segments(const char* op, const ops::LoraSegments& seg) {
  if (seg.num_segments > 65535)
    return invalid_argument(std::string(op) + ": at most 65535 segments per call, got " +
                            std::to_string(seg.num_segments));
  if (seg.max_seg_len < 0 || seg.max_seg_len > seg.num_tokens)
    return invalid_argument(std::string(op) + ": max_seg_len must be 0..num_tokens");
  return Status::ok();
}

Status check_shrink(const ops::LoraShrinkParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::lora_shrink_check(p));
  PUNICA_RETURN_IF_ERROR(check_dtype("lora_shrink", p.dtype));
  PUNICA_RETURN_IF_ERROR(check_segments("lora_shrink", p.seg));
  if (p.h_in % 8 != 0 || p.x_stride % 8 != 0)
    return invalid_argument("lora_shrink: h_in and x_stride must be multiples of 8, got " + std::to_string(p.h_in) +
                            " and " + std::to_string(p.x_stride));
  if (!aligned16(p.x) || !aligned16(p.v)) return invalid_argument("lora_shrink: x and v must be 16-byte aligned");
  return Status::ok();
}

Status check_expand(const ops::LoraExpandParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::lora_expand_check(p));
  PUNICA_RETURN_IF_ERROR(check_dtype("lora_expand", p.dtype));
  PUNICA_RETURN_IF_ERROR(check_segments("lora_expand", p.seg));
  if (p.y_stride % 8 != 0) return invalid_argument("lora_expand: y_stride must be a multiple of 8");
  for (int i = 0; i < p.num_slices; ++i)
    if (p.slices[i].h_out % 8 != 0 || p.slices[i].y_col_offset % 8 != 0)
      return invalid_argument("lora_expand: slice " + std::to_string(i) +
                              ": h_out and y_col_offset must be multiples of 8");
  if (!aligned16(p.y) || !aligned16(p.v)) return invalid_argument("lora_expand: y and v must be 16-byte aligned");
  return Status::ok();
}

bool nothing_to_do(const ops::LoraSegments& seg) {
  return seg.num_tokens == 0 || seg.num_segments == 0 || seg.max_seg_len == 0 || seg.num_adapted_segments == 0;
}

size_t partial_bytes(const LoraWorkspace& ws) {
  return ws.ptr && ws.bytes > kSyncBytes + kAccBytes ? std::min(ws.bytes - kSyncBytes - kAccBytes, kPartialBytes) : 0;
}
float* partials(const LoraWorkspace& ws) {
  return reinterpret_cast<float*>(static_cast<char*>(ws.ptr) + kSyncBytes + kAccBytes);
}

// A benchmarking override from the environment: its integer value, -1 (by shape) when unset.
int env_override(const char* name) {
  const char* e = std::getenv(name);
  return e ? std::atoi(e) : -1;
}

// PUNICA_LORA_FUSED=0 turns the single-launch decode kernel off, =1 uses it for every decode batch
// (benchmarking); unset: by size (below).
int fused_override() {
  static const int v = env_override("PUNICA_LORA_FUSED");
  return v;
}

// lora_set_cluster_override / PUNICA_LORA_CLUSTER: -1 by shape, 0 off, 1 / 2 / 4 forced with token tiles of
// 16 / 32 / 64 rows.
int& cluster_override() {
  static int v = env_override("PUNICA_LORA_CLUSTER");
  return v;
}

// lora_set_stream_override / PUNICA_LORA_STREAM: -1 by shape, 0 off, 1 forced for every shape (and the
// persistent decode kernel off).
int& stream_override() {
  static int v = env_override("PUNICA_LORA_STREAM");
  return v;
}

// PUNICA_LORA_STREAM_COLS=1 / 0: the streaming expand always takes its wide / narrow column tile
// (benchmarking); unset: by shape.
int stream_cols_override() {
  static const int v = env_override("PUNICA_LORA_STREAM_COLS");
  return v;
}

// The streaming decode kernels (lora_stream.cu) for batches of short segments (16-row tiles). Measured on
// H100 (docs/perf/lora-kernels.md, fifth session): they beat the tiled kernels from ~20 adapted segments
// at rank <= 32 (distinct B = 128 r = 16: 19.0 vs 22.1 us) and for 7-16 at rank 64 (distinct B = 16:
// 10.8 vs 15.7 us), where fewer segments go to the cluster kernel; with more rank-64
// adapters the tiled kernels' shrink / expand overlap wins (distinct B = 32: 15.6 vs 18.9 us).
bool use_stream(const ops::LoraSegments& seg, int rp) {
  const int ov = stream_override();
  if (ov >= 0) return ov > 0;
  if (pick_tile_rows(seg) != 16) return false;
  const int segs = seg.num_adapted_segments;
  return rp <= 32 ? segs >= 20 : segs >= 7 && segs <= 16;
}

// Cluster launches whose tiles all have at most this many token rows take the kernel's few-row instance (CUDA-core
// matrix-vector phases). Measured on H100 (docs/perf/lora-kernels.md, seventh session, each row both ways): it
// wins for one-token tiles at every rank (r = 64 B = 1 4.25 -> 3.6 us) and for tiles of up to 4 rows at rank 16
// (split1 B = 4 3.86 -> 3.70), and loses for 4-row tiles at rank 64 (identical B = 4 5.02 -> 5.83): 4 rows below
// rank 64, 2 from there on. PUNICA_LORA_GEMV sets the limit for every rank (benchmarking; 0: never), at most
// lora_cluster_gemv_cap(rp), the rows its per-thread arrays hold.
int cluster_gemv_rows(int rp) {
  static const int v = env_override("PUNICA_LORA_GEMV");
  return std::min(v >= 0 ? v : rp <= 32 ? 4 : 2, lora_detail::lora_cluster_gemv_cap(rp));
}

unsigned long long*& trace_buffer() {
  static unsigned long long* t = nullptr;
  return t;
}

// PUNICA_LORA_CS=16 / 8 / 4 / 2: the cluster kernel takes clusters of that many CTAs wherever it runs and that
// size fits (16 otherwise), and the smaller clusters are not considered beyond the 16-CTA kernel's rule
// (benchmarking); unset: by shape (lora_add).
int cluster_size_override() {
  static const int v = env_override("PUNICA_LORA_CS");
  return v;
}

// The operands both one-launch kernels take (slices past num_slices null).
void fill_addon(const ops::LoraShrinkParams& s, const ops::LoraExpandParams& e, lora_detail::AddonArgs* a) {
  a->x = s.x;
  a->x_stride = s.x_stride;
  a->h_in = s.h_in;
  a->y = e.y;
  a->y_stride = e.y_stride;
  a->v = s.v;
  a->v_rank_stride = s.v_rank_stride;
  a->num_slices = s.num_slices;
  for (int i = 0; i < ops::kMaxLoraSlices; ++i) {
    const bool on = i < s.num_slices;
    a->a[i] = on ? s.slices[i].a : nullptr;
    a->b[i] = on ? e.slices[i].b : nullptr;
    a->rank[i] = on ? s.slices[i].rank : nullptr;
    a->scale[i] = on ? e.slices[i].scale : nullptr;
    a->h_out[i] = on ? e.slices[i].h_out : 0;
    a->y_col_offset[i] = on ? e.slices[i].y_col_offset : 0;
  }
  a->seg = {s.seg.seg_start, s.seg.seg_slot, s.seg.num_tokens};
}

// Fills the cluster kernel's arguments for token tiles of 16 * mt rows and clusters of cs CTAs; false when the
// shape does not fit it.
bool plan_cluster(const ops::LoraShrinkParams& s, const ops::LoraExpandParams& e, int mt, int cs,
                  lora_detail::ClusterArgs* a) {
  if (e.v_rank_stride > ops::kMaxLoraRank) return false;
  const int tiles = std::max(1, ceil_div(adapted_len(s.seg), 16 * mt));
  const int64_t items = int64_t{s.seg.num_segments} * tiles;
  if (items * cs > int64_t{1} << 30) return false;
  *a = {};
  fill_addon(s, e, a);
  a->k_per = round_up(ceil_div(s.h_in, cs), 16);
  a->a_pitch = a->k_per + 8;
  int brows = 0, ycols = 0;
  for (int i = 0; i < s.num_slices; ++i) {
    a->cspan[i] = round_up(ceil_div(e.slices[i].h_out, cs), 8);
    a->bcol[i] = brows;
    a->ycol[i] = ycols;
    brows += round_up(a->cspan[i], 16);
    ycols += a->cspan[i];
  }
  for (int i = s.num_slices; i < ops::kMaxLoraSlices; ++i) {
    a->bcol[i] = brows;
    a->ycol[i] = ycols;
  }
  a->b_rows = brows;
  a->y_pitch = ycols + 8;
  a->tiles = tiles;
  a->few_rows = mt == 1 && adapted_len(s.seg) <= cluster_gemv_rows(padded_rank(s.v_rank_stride)) ? 1 : 0;
  a->num_items = static_cast<int>(items);
  a->cluster_size = cs;
  a->trace = trace_buffer();
  return lora_detail::lora_cluster_layout(padded_rank(s.v_rank_stride), mt, a);
}

// Token-tile height of the cluster kernel for this batch (in 16-row m tiles), 0 for the other paths.
// Measured on H100 (docs/perf/lora-kernels.md, "Cluster kernel v2"): one cluster per segment tile wins while
// few segments carry adapters (up to 12 at rank <= 32, 6 at rank 64 and more: 1.1-1.6x faster than the
// two-kernel / persistent paths; from 8 rank-64 segments on the streaming kernels win, fifth session) and
// loses from ~16 adapters on (16 CTAs per segment then stream too little
// each: 1.1-2.3x slower at 16..128 distinct adapters) and on prefill-length segments.
int pick_cluster_tiles(const ops::LoraShrinkParams& s, const DeviceFacts& dev) {
  if (!dev.pdl) return 0;  // clusters need sm_90
  const int ov = cluster_override();
  if (ov == 0 || ov == 1 || ov == 2 || ov == 4) return ov;
  const int rp = padded_rank(s.v_rank_stride);
  if (adapted_len(s.seg) > 128 || s.seg.num_adapted_segments > (rp <= 32 ? 12 : 6)) return 0;
  return adapted_len(s.seg) > 64 && rp >= 64 ? 2 : 1;
}

// The cluster kernel's plan for this batch in *ca, and its m tiles in *mt (0: the other paths take the batch).
// Measured on H100 (docs/perf/lora-kernels.md, eighth session, calls 1-3, every size forced on every row):
// - 16-CTA clusters by pick_cluster_tiles' rule when twice its clusters can be resident at once (the next call's
//   clusters then load their weights during this one).
// - Otherwise decode batches (every adapted segment in one 16-row tile) take 8-CTA clusters if all of them are
//   resident at once (zipf r = 16 B = 16 5.8 -> 5.0 us, uniform r = 64 B = 32 7.9 -> 6.5, B = 128 14.8 -> 11.7),
//   else 2-CTA clusters if two calls' clusters are (distinct r = 16 B = 32 8.4 -> 6.9). Longer segments take 8-CTA
//   clusters only in place of the 16-CTA rule's 32-row tiles (identical r = 64 B = 128 11.4 -> 9.9); in place of
//   its 16-row tiles they lost (split1 r = 64 B = 32 7.0 -> 7.8: each CTA's share of a full tile doubles).
//   A 2-CTA cluster's chain after the PDL wait is ~3 us longer than a 16-CTA one, which only the overlap of two
//   calls repays (one wave of them: distinct r = 16 B = 64 10.9 -> 12.5); 4-CTA clusters lost to 8 or 2 on every
//   row.
// - Failing both, 16-CTA clusters by that rule whenever any is resident, as before.
// PUNICA_LORA_CLUSTER (forced tiles) and PUNICA_LORA_CS (forced size) replace this for benchmarking.
Status choose_cluster(const ops::LoraShrinkParams& s, const ops::LoraExpandParams& e, const DeviceFacts& dev,
                      lora_detail::ClusterArgs* ca, int* mt) {
  *mt = 0;
  const int rp = padded_rank(s.v_rank_stride);
  // plans (m, cs) and asks how many such clusters can be resident; 0 when it does not fit
  auto resident = [&](int m, int cs, int* n) -> Status {
    *n = 0;
    if (!plan_cluster(s, e, m, cs, ca)) return Status::ok();
    return lora_detail::lora_cluster_capacity(s.dtype, *ca, rp, m, n);
  };
  constexpr int k16 = lora_detail::kLoraClusterSize;
  const int ov = cluster_size_override();
  const int m16 = pick_cluster_tiles(s, dev);
  int n = 0;
  if (ov > 0 || cluster_override() > 0) {  // forced (benchmarking): the 16-CTA rule, at the forced size if it fits
    if (m16 == 0) return Status::ok();
    if (ov > 0 && ov != k16) PUNICA_RETURN_IF_ERROR(resident(m16, ov, &n));
    if (n == 0) PUNICA_RETURN_IF_ERROR(resident(m16, k16, &n));
    if (n > 0) *mt = m16;
    return Status::ok();
  }
  lora_detail::ClusterArgs plan16;  // the 16-CTA plan, kept for the last step
  int n16 = 0;
  if (m16 > 0) {
    PUNICA_RETURN_IF_ERROR(resident(m16, k16, &n16));
    if (n16 > 0 && 2 * ca->num_items <= n16) {
      *mt = m16;
      return Status::ok();
    }
    plan16 = *ca;
  }
  if (dev.pdl && cluster_override() != 0 && (adapted_len(s.seg) <= 16 || m16 == 2)) {
    PUNICA_RETURN_IF_ERROR(resident(1, 8, &n));
    if (n > 0 && ca->num_items <= n) {
      *mt = 1;
      return Status::ok();
    }
    PUNICA_RETURN_IF_ERROR(resident(1, 2, &n));
    if (n > 0 && 2 * ca->num_items <= n) {
      *mt = 1;
      return Status::ok();
    }
  }
  if (n16 > 0) {
    *ca = plan16;
    *mt = m16;
  }
  return Status::ok();
}

// lora_set_prefill_override / PUNICA_LORA_PREFILL: -1 by shape, 0 off, 1 for every lora_add the prefill kernel can
// take (benchmarking and the oracle).
int& prefill_override() {
  static int v = env_override("PUNICA_LORA_PREFILL");
  return v;
}

// The prefill kernel's v columns (16 / 32 / 64) when it takes this lora_add, else 0. It needs sm_90 and at most
// 64 v columns (slices x padded rank); by shape it takes the batches the two-kernel path would give 64-row tiles
// (pick_tile_rows) and the cluster kernel does not take (lora_add asks that first). Measured on H100 (ninth session,
// docs/perf/lora-kernels.md): faster than the two-kernel path on every prefill row of the benchmark (4 x 512 tokens,
// 4096 x 4096 r = 16 23.6 vs 30.6 us, r = 64 33.4 vs 44.8; 4096 x 11008 r = 64 62.4 vs 89.2).
Status pick_prefill(const ops::LoraShrinkParams& s, const DeviceFacts& dev, int* nv) {
  *nv = 0;
  const int ov = prefill_override();
  if (!dev.pdl || ov == 0) return Status::ok();
  const int cols = lora_detail::prefill_v_cols(s.num_slices, padded_rank(s.v_rank_stride));
  // by shape only for prefill batches, and not while the streaming kernels are forced for every shape
  if (cols == 0 || (ov != 1 && (pick_tile_rows(s.seg) != 64 || stream_override() == 1))) return Status::ok();
  int clusters = 0;
  PUNICA_RETURN_IF_ERROR(lora_detail::lora_prefill_capacity(s.dtype, cols, &clusters));
  if (clusters > 0) *nv = cols;
  return Status::ok();
}

// lora_set_adapter_stream_override / PUNICA_LORA_ASTREAM: -1 by shape, 0 off, 1 for every lora_add the
// adapter-streaming kernel can take (benchmarking and the oracle).
int& adapter_stream_override() {
  static int v = env_override("PUNICA_LORA_ASTREAM");
  return v;
}

// The adapter-streaming decode kernel's plan (lora_adapter_stream.cu) in *a; false when it cannot take the batch:
// before sm_90, a segment of more than kAdapterStreamTok tokens, or no cluster size whose shared-memory plan fits.
// Cluster size: the largest of 8, 4, 2, 1 whose clusters for all adapted segments fit on the SMs at once (one CTA
// per SM), larger where the plan of that one does not fit.
bool plan_adapter_stream(const ops::LoraShrinkParams& s, const ops::LoraExpandParams& e, const DeviceFacts& dev,
                         lora_detail::AdapterStreamArgs* a) {
  const int len = adapted_len(s.seg);
  if (!dev.pdl || len > lora_detail::kAdapterStreamTok || e.v_rank_stride > ops::kMaxLoraRank) return false;
  const int adapted = std::max(1, s.seg.num_adapted_segments);
  int cs = 8;
  while (cs > 1 && adapted * cs > dev.sms) cs /= 2;
  for (; cs <= 8; cs *= 2) {
    if (int64_t{s.seg.num_segments} * cs > int64_t{1} << 30) return false;
    *a = {};
    fill_addon(s, e, a);
    a->num_segments = s.seg.num_segments;
    a->cluster_size = cs;
    a->tok = len <= 1 ? 1 : lora_detail::kAdapterStreamTok;
    a->k_per = round_up(ceil_div(s.h_in, cs), 8);
    for (int i = 0; i < s.num_slices; ++i) a->cspan[i] = round_up(ceil_div(e.slices[i].h_out, cs), 8);
    if (lora_detail::lora_adapter_stream_layout(a)) return true;
  }
  return false;
}

// Whether the adapter-streaming kernel takes this lora_add (its plan in *a). Measured on an H200 (eleventh session,
// call 9, 4096 x 4096 f16, forced against the other paths): it wins where a CTA streams >= 256 KB of one adapter,
// one CTA per segment (distinct r = 16 B = 128 15.8 vs 17.7 us; r = 64 B = 128 37.7 vs 44.5) or 2-CTA clusters at
// rank 64 (B = 64 22.4 vs 24.5), and loses with less per CTA (r = 16 B = 64, 2-CTA clusters: 11.7 vs 9.9; r = 64
// B = 32, 4-CTA clusters: 24.0 vs 14.1): at least 96 adapted segments, or 48 from rank 64 on.
bool pick_adapter_stream(const ops::LoraShrinkParams& s, const ops::LoraExpandParams& e, const DeviceFacts& dev,
                         lora_detail::AdapterStreamArgs* a) {
  const int ov = adapter_stream_override();
  if (ov == 0) return false;
  const int adapted = s.seg.num_adapted_segments;
  if (ov != 1 && adapted < (padded_rank(s.v_rank_stride) >= 64 ? 48 : 96)) return false;
  return plan_adapter_stream(s, e, dev, a);
}

Status launch_prefill(const ops::LoraShrinkParams& s, const ops::LoraExpandParams& e, const DeviceFacts& dev, int nv,
                      cudaStream_t stream) {
  lora_detail::PrefillArgs a{};
  fill_addon(s, e, &a);
  a.rp = padded_rank(s.v_rank_stride);
  a.max_len = adapted_len(s.seg);
  a.num_segments = s.seg.num_segments;
  a.trace = trace_buffer();
  return lora_detail::lora_launch_prefill(s.dtype, a, nv, dev.pdl, stream);
}

// The shrink arguments both shrink kernels share; `per` counts the kernel's k steps per split.
void fill_shrink_args(const ops::LoraShrinkParams& p, const LoraWorkspace& ws, int ksplit, int per, ShrinkArgs* a) {
  *a = {};
  a->x = p.x;
  a->x_stride = p.x_stride;
  a->h_in = p.h_in;
  a->num_slices = p.num_slices;
  for (int i = 0; i < ops::kMaxLoraSlices; ++i) {
    a->a[i] = i < p.num_slices ? p.slices[i].a : nullptr;
    a->rank[i] = i < p.num_slices ? p.slices[i].rank : nullptr;
  }
  a->v = p.v;
  a->v_rank_stride = p.v_rank_stride;
  a->ksplit = ksplit;
  a->ksteps_per_split = per;
  a->vpart = ksplit > 1 ? partials(ws) : nullptr;
  a->seg = {p.seg.seg_start, p.seg.seg_slot, p.seg.num_tokens};
}

// ksplit as far as the workspace holds its partials (and at most max_ksplit), then evened out over the nk
// k steps so that no split is empty; *per = k steps per split.
int settle_split(const ops::LoraShrinkParams& p, const LoraWorkspace& ws, int ksplit, int max_ksplit, int nk,
                 int* per) {
  const int64_t split_bytes = int64_t{4} * p.seg.num_tokens * p.num_slices * p.v_rank_stride;
  const int64_t fit = partial_bytes(ws) / split_bytes;
  ksplit = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({ksplit, fit, max_ksplit})));
  *per = ceil_div(nk, ksplit);
  return ceil_div(nk, *per);
}

// Fills the shrink launch. Split-K is chosen so that one wave of resident blocks runs, within the
// workspace; ksplit > 1 leaves partial sums in the workspace.
void plan_shrink(const ops::LoraShrinkParams& p, const LoraWorkspace& ws, const DeviceFacts& dev, int max_ksplit,
                 LaunchShape* shape, ShrinkArgs* a) {
  shape->tm = pick_tile_rows(p.seg);
  shape->rp = padded_rank(p.v_rank_stride);
  shape->nb = 0;
  shape->pdl = dev.pdl;
  shape->ks = lora_detail::shrink_step_k(shape->tm, shape->rp, adapted_len(p.seg) <= 32);
  const int nk = ceil_div(p.h_in, shape->ks);
  const int tiles_y = grid_tiles_y(p.seg, shape->tm, p.num_slices);
  const int64_t work_tiles = adapted_tiles(p.seg, shape->tm) * p.num_slices;
  // One full wave of resident blocks (Nsight/bench: 640 blocks on 528 slots ran 1.2 waves and lost ~25% of
  // the bandwidth), so the split rounds down.
  static int occupancy[2][4][2] = {};
  const int ti = shape->tm == 16 ? 0 : 1, ri = shape->rp == 16 ? 0 : shape->rp == 32 ? 1 : shape->rp == 64 ? 2 : 3;
  const int ki = shape->ks == lora_detail::shrink_step_k(shape->tm, shape->rp) ? 0 : 1;
  int& occ = occupancy[ti][ri][ki];
  if (occ == 0) occ = lora_detail::lora_shrink_blocks_per_sm(shape->tm, shape->rp, shape->ks);
  const int64_t target_blocks = int64_t{occ} * dev.sms;
  int per = 0;
  const int ksplit = settle_split(
      p, ws, static_cast<int>(std::clamp<int64_t>(target_blocks / work_tiles, 1, nk)), max_ksplit, nk, &per);

  fill_shrink_args(p, ws, ksplit, per, a);
  shape->grid = dim3(static_cast<unsigned>(p.num_slices * ksplit), static_cast<unsigned>(tiles_y),
                     static_cast<unsigned>(p.seg.num_segments));
}

// Fills the streaming shrink's launch. Split-K gives about four blocks per SM (16 warps, each keeping
// kStreamShrinkBatch 512-byte loads in flight) and at least one whole batch per block when the workspace
// holds the partials; without a workspace ksplit is 1 and blocks loop over batches.
void plan_stream_shrink(const ops::LoraShrinkParams& p, const LoraWorkspace& ws, const DeviceFacts& dev,
                        LaunchShape* shape, ShrinkArgs* a) {
  constexpr int kBatchCols = 4 * lora_detail::kStreamShrinkBatch;  // chunks per block batch
  const int nchunks = ceil_div(p.h_in, 32);
  const int groups = ceil_div(p.v_rank_stride, 8);
  const int64_t work = adapted_tiles(p.seg, 16) * p.num_slices * groups;
  int ksplit = static_cast<int>(std::clamp<int64_t>(int64_t{4} * dev.sms / work, 1, std::max(1, nchunks / 4)));
  ksplit = std::max(ksplit, ceil_div(nchunks, kBatchCols));
  int per = 0;
  ksplit = settle_split(p, ws, ksplit, 1 << 20, nchunks, &per);

  fill_shrink_args(p, ws, ksplit, per, a);
  a->rank_groups = groups;
  a->x_rows = decode_tile_rows(p.seg);
  a->x_pitch = std::min(per, kBatchCols) * 32 + 8;
  shape->tm = a->x_rows > 8 ? 16 : 8;
  shape->rp = padded_rank(p.v_rank_stride);
  shape->nb = 0;
  shape->ks = 32;
  shape->pdl = dev.pdl;
  const int bx = p.num_slices * groups * ksplit;
  shape->grid = dim3(static_cast<unsigned>(bx), static_cast<unsigned>(grid_tiles_y(p.seg, 16, bx)),
                     static_cast<unsigned>(p.seg.num_segments));
}

// The reduce kernel's launch: one block per (slice, chunk of reduce_rows() token rows, segment), chunks
// strided when many.
LaunchShape plan_reduce(const ops::LoraShrinkParams& p, const DeviceFacts& dev) {
  LaunchShape shape{};
  shape.pdl = dev.pdl;
  const int chunk = lora_detail::reduce_rows(p.v_rank_stride);
  const int rows = std::max(1, std::min({ceil_div(adapted_len(p.seg), chunk), kMaxGridY,
                                         static_cast<int>(kMaxBlocksPerCall / std::max(1, p.seg.num_segments))}));
  shape.grid = dim3(static_cast<unsigned>(p.num_slices), static_cast<unsigned>(rows),
                    static_cast<unsigned>(p.seg.num_segments));
  return shape;
}

// Fills the expand launch: the tiled kernel (lora_expand.cu), or with `stream` the streaming one
// (lora_stream.cu). Both take the wide column tile when that still fills the SMs.
void plan_expand(const ops::LoraExpandParams& p, const DeviceFacts& dev, int ksplit, const float* vpart, bool stream,
                 LaunchShape* shape, ExpandArgs* a) {
  shape->tm = stream ? (decode_tile_rows(p.seg) > 8 ? 16 : 8) : pick_tile_rows(p.seg);
  shape->rp = padded_rank(p.v_rank_stride);
  shape->pdl = dev.pdl;
  auto col_tiles = [&](int nb) {
    int n = 0;
    for (int i = 0; i < p.num_slices; ++i) n += ceil_div(p.slices[i].h_out, nb);
    return n;
  };
  const int wide = stream ? lora_detail::stream_expand_cols(shape->rp, true) : 128;
  const int narrow = stream ? lora_detail::stream_expand_cols(shape->rp, false) : 64;
  // The tiled expand takes the wide tile from two blocks per SM on. The streaming one takes it always,
  // except for tiles of more than 8 tokens at rank <= 16 (H100, fifth session, both forced on every
  // decode row: wide won by 0.3-1.0 us everywhere else, e.g. noadapt r = 64 B = 16 8.25 vs 8.97 us; narrow
  // won zipf r = 16 B = 64, 8.75 vs 11.54 us).
  shape->nb = stream ? (shape->tm > 8 && shape->rp <= 16 ? narrow : wide)
                     : adapted_tiles(p.seg, shape->tm) * col_tiles(wide) >= int64_t{2} * dev.sms ? wide : narrow;
  if (stream && stream_cols_override() >= 0) shape->nb = stream_cols_override() ? wide : narrow;
  a->y = p.y;
  a->y_stride = p.y_stride;
  a->num_slices = p.num_slices;
  int tiles = 0;
  for (int i = 0; i < ops::kMaxLoraSlices; ++i) {
    const bool on = i < p.num_slices;
    a->b[i] = on ? p.slices[i].b : nullptr;
    a->rank[i] = on ? p.slices[i].rank : nullptr;
    a->scale[i] = on ? p.slices[i].scale : nullptr;
    a->h_out[i] = on ? p.slices[i].h_out : 0;
    a->y_col_offset[i] = on ? p.slices[i].y_col_offset : 0;
    a->ntile_begin[i] = tiles;
    if (on) tiles += ceil_div(p.slices[i].h_out, shape->nb);
  }
  a->ntile_begin[ops::kMaxLoraSlices] = tiles;
  a->v = const_cast<float*>(p.v);
  a->v_rank_stride = p.v_rank_stride;
  a->ksplit = ksplit;
  a->vpart = vpart;
  a->prefetch_y = 0;
  a->seg = {p.seg.seg_start, p.seg.seg_slot, p.seg.num_tokens};
  shape->grid = dim3(static_cast<unsigned>(tiles),
                     static_cast<unsigned>(grid_tiles_y(p.seg, stream ? 16 : shape->tm, tiles)),
                     static_cast<unsigned>(p.seg.num_segments));
}

}  // namespace

void lora_set_cluster_override(int cluster_size) { cluster_override() = cluster_size; }
void lora_set_cluster_trace(unsigned long long* buf) { trace_buffer() = buf; }
void lora_set_stream_override(int mode) { stream_override() = mode; }
void lora_set_adapter_stream_override(int mode) { adapter_stream_override() = mode; }
void lora_set_prefill_override(int mode) { prefill_override() = mode; }

Status lora_cluster_capacity_for(DType dtype, int h_in, int h_out, int rank, int tile_rows, int cluster_size,
                                 int* clusters) {
  *clusters = 0;
  DeviceFacts dev;
  PUNICA_RETURN_IF_ERROR(device_facts(&dev));
  const int mt = std::max(1, tile_rows / 16);
  if (!dev.pdl || (mt != 1 && mt != 2 && mt != 4) || rank < 1 || rank > ops::kMaxLoraRank) return Status::ok();
  // a one-slice call whose longest segment fills one tile; only the shapes matter, no pointer is read
  ops::LoraShrinkParams s{};
  ops::LoraExpandParams e{};
  s.dtype = e.dtype = dtype;
  s.h_in = h_in;
  s.x_stride = h_in;
  s.num_slices = e.num_slices = 1;
  s.slices[0].h_out = e.slices[0].h_out = h_out;
  s.v_rank_stride = e.v_rank_stride = rank;
  e.y_stride = h_out;
  s.seg.num_tokens = s.seg.max_seg_len = tile_rows;
  s.seg.num_segments = s.seg.num_adapted_segments = 1;
  lora_detail::ClusterArgs ca;
  if (!plan_cluster(s, e, mt, cluster_size, &ca)) return Status::ok();
  return lora_detail::lora_cluster_capacity(dtype, ca, padded_rank(rank), mt, clusters);
}

Status lora_prefill_capacity_for(DType dtype, int rank, int* clusters) {
  *clusters = 0;
  DeviceFacts dev;
  PUNICA_RETURN_IF_ERROR(device_facts(&dev));
  const int nv = lora_detail::prefill_v_cols(1, padded_rank(rank));
  if (!dev.pdl || rank < 1 || rank > ops::kMaxLoraRank || nv == 0) return Status::ok();
  return lora_detail::lora_prefill_capacity(dtype, nv, clusters);
}

size_t lora_workspace_size() { return kSyncBytes + kAccBytes + kPartialBytes; }

Status lora_workspace_init(const LoraWorkspace& ws, cudaStream_t stream) {
  if (ws.ptr == nullptr || ws.bytes == 0) return Status::ok();
  return cuda_status(cudaMemsetAsync(ws.ptr, 0, ws.bytes, stream), "lora_workspace_init: cudaMemsetAsync");
}

Status lora_shrink(const ops::LoraShrinkParams& p, const LoraWorkspace& ws, cudaStream_t stream) {
  PUNICA_RETURN_IF_ERROR(check_shrink(p));
  if (nothing_to_do(p.seg)) return Status::ok();
  DeviceFacts dev;
  PUNICA_RETURN_IF_ERROR(device_facts(&dev));
  LaunchShape shape;
  ShrinkArgs args;
  if (use_stream(p.seg, padded_rank(p.v_rank_stride))) {
    plan_stream_shrink(p, ws, dev, &shape, &args);
    PUNICA_RETURN_IF_ERROR(lora_detail::lora_launch_stream_shrink(p.dtype, shape, args, stream));
  } else {
    plan_shrink(p, ws, dev, 1 << 20, &shape, &args);
    PUNICA_RETURN_IF_ERROR(lora_detail::lora_launch_shrink(p.dtype, shape, args, stream));
  }
  if (args.ksplit == 1) return Status::ok();
  return lora_detail::lora_launch_reduce(plan_reduce(p, dev), args, stream);
}

Status lora_expand(const ops::LoraExpandParams& p, cudaStream_t stream) {
  PUNICA_RETURN_IF_ERROR(check_expand(p));
  if (nothing_to_do(p.seg)) return Status::ok();
  DeviceFacts dev;
  PUNICA_RETURN_IF_ERROR(device_facts(&dev));
  LaunchShape shape;
  ExpandArgs args;
  const bool stream_path = use_stream(p.seg, padded_rank(p.v_rank_stride));
  plan_expand(p, dev, 1, nullptr, stream_path, &shape, &args);
  return stream_path ? lora_detail::lora_launch_stream_expand(p.dtype, shape, args, stream)
                     : lora_detail::lora_launch_expand(p.dtype, shape, args, stream);
}

Status lora_add(const ops::LoraShrinkParams& s, const ops::LoraExpandParams& e, const LoraWorkspace& ws,
                cudaStream_t stream) {
  PUNICA_RETURN_IF_ERROR(check_shrink(s));
  PUNICA_RETURN_IF_ERROR(check_expand(e));
  if (s.v != e.v || s.v_rank_stride != e.v_rank_stride || s.num_slices != e.num_slices || s.dtype != e.dtype ||
      s.seg.num_tokens != e.seg.num_tokens || s.seg.num_segments != e.seg.num_segments ||
      s.seg.seg_start != e.seg.seg_start || s.seg.seg_slot != e.seg.seg_slot)
    return invalid_argument("lora_add: shrink and expand params must share v, v_rank_stride, slices, dtype and "
                            "segments");
  if (nothing_to_do(s.seg)) return Status::ok();
  DeviceFacts dev;
  PUNICA_RETURN_IF_ERROR(device_facts(&dev));
  int prefill_nv = 0;
  PUNICA_RETURN_IF_ERROR(pick_prefill(s, dev, &prefill_nv));
  if (prefill_nv > 0 && prefill_override() == 1) return launch_prefill(s, e, dev, prefill_nv, stream);
  {
    lora_detail::AdapterStreamArgs as;
    if (pick_adapter_stream(s, e, dev, &as)) return lora_detail::lora_launch_adapter_stream(s.dtype, as, dev.pdl, stream);
  }
  {
    lora_detail::ClusterArgs ca;
    int mt = 0;
    PUNICA_RETURN_IF_ERROR(choose_cluster(s, e, dev, &ca, &mt));
    if (mt > 0) return lora_detail::lora_launch_cluster(s.dtype, ca, padded_rank(s.v_rank_stride), mt, dev.pdl, stream);
  }
  if (prefill_nv > 0) return launch_prefill(s, e, dev, prefill_nv, stream);
  LaunchShape ss, es;
  ShrinkArgs sa;
  ExpandArgs ea;
  // Decode batches (segments of at most 128 tokens) whose adapters are small may take the single-launch
  // kernel: there the launch-to-launch latency, not bytes, is the cost.
  int sum_h_out = 0;
  for (int i = 0; i < e.num_slices; ++i) sum_h_out += e.slices[i].h_out;
  const double adapter_bytes =
      2.0 * s.seg.num_adapted_segments * s.v_rank_stride * (static_cast<double>(s.h_in) + sum_h_out);
  const int ov = fused_override();
  const int64_t v_elems = int64_t{s.seg.num_tokens} * s.num_slices * s.v_rank_stride;
  // Measured on H100 (docs/perf/lora-kernels.md): the single launch wins for rank >= 64 with up to 16
  // adapters and for batches of one or two adapters with longer segments; the two kernels win for small
  // ranks spread over many one-token segments (their shrink splits K wider and needs no grid-wide wait).
  const int rp = padded_rank(s.v_rank_stride);
  const int segs = s.seg.num_adapted_segments;
  const bool fused_wins = rp >= 64 ? segs <= 16 : (segs <= 2 && adapted_len(s.seg) > 4);
  const bool stream_path = use_stream(s.seg, rp);
  const bool fused = adapted_len(s.seg) <= 128 && v_elems <= kAccFloats && partial_bytes(ws) > 0 && ov != 0 &&
                     !stream_path &&
                     (ov == 1 || (fused_wins && adapter_bytes <= 24e6));
  if (fused) {
    lora_detail::FusedShape fs;
    fs.rp = padded_rank(s.v_rank_stride);
    fs.tiles = ceil_div(adapted_len(s.seg), 16);
    const int nk = ceil_div(s.h_in, lora_detail::shrink_step_k(16, fs.rp));
    const int64_t work = int64_t{std::max(1, s.seg.num_adapted_segments)} * fs.tiles * s.num_slices;
    int ksplit = static_cast<int>(std::clamp<int64_t>((int64_t{4} * dev.sms + work - 1) / work, 1, nk));
    const int per = ceil_div(nk, ksplit);
    ksplit = ceil_div(nk, per);
    ss.tm = 16;
    plan_shrink(s, ws, dev, 1, &ss, &sa);  // fills the pointers; the split is set below
    sa.ksplit = ksplit;
    sa.ksteps_per_split = per;
    sa.vpart = nullptr;
    plan_expand(e, dev, 1, nullptr, false, &es, &ea);
    int tiles64 = 0;
    for (int i = 0; i < e.num_slices; ++i) tiles64 += ceil_div(e.slices[i].h_out, 64);
    fs.nb = int64_t{tiles64} * std::max(1, s.seg.num_adapted_segments) * fs.tiles <= 4 * dev.sms ? 64 : 128;
    fs.sms = dev.sms;
    fs.pdl = dev.pdl;
    fs.sync = static_cast<unsigned*>(ws.ptr);
    fs.acc = reinterpret_cast<float*>(static_cast<char*>(ws.ptr) + kSyncBytes);
    fs.acc_floats = kAccFloats;
    int tiles = 0;  // column tiles for the chosen width (plan_expand may have picked another)
    for (int i = 0; i < e.num_slices; ++i) {
      ea.ntile_begin[i] = tiles;
      tiles += ceil_div(e.slices[i].h_out, fs.nb);
    }
    for (int i = e.num_slices; i <= ops::kMaxLoraSlices; ++i) ea.ntile_begin[i] = tiles;
    fs.n_shrink = ksplit * s.num_slices * s.seg.num_segments * fs.tiles;
    fs.n_expand = tiles * s.seg.num_segments * fs.tiles;
    return lora_detail::lora_launch_fused_decode(s.dtype, fs, sa, ea, stream);
  }
  if (stream_path) plan_stream_shrink(s, ws, dev, &ss, &sa);
  else plan_shrink(s, ws, dev, 1 << 20, &ss, &sa);
  // When each expand block would sum only a few KB of partials (decode), the expand sums them itself and
  // the reduce kernel (one launch and one pass) is skipped.
  const int64_t expand_sum_bytes = int64_t{4} * sa.ksplit * decode_tile_rows(s.seg) * s.v_rank_stride;
  const bool sum_in_expand =
      sa.ksplit > 1 && (stream_path || ss.tm == 16) && adapted_len(s.seg) <= 128 && expand_sum_bytes <= (32 << 10);
  plan_expand(e, dev, sum_in_expand ? sa.ksplit : 1, sum_in_expand ? sa.vpart : nullptr, stream_path, &es, &ea);
  ea.prefetch_y = dev.pdl ? 1 : 0;
  PUNICA_RETURN_IF_ERROR(stream_path ? lora_detail::lora_launch_stream_shrink(s.dtype, ss, sa, stream)
                                     : lora_detail::lora_launch_shrink(s.dtype, ss, sa, stream));
  if (sa.ksplit > 1 && !sum_in_expand)
    PUNICA_RETURN_IF_ERROR(lora_detail::lora_launch_reduce(plan_reduce(s, dev), sa, stream));
  return stream_path ? lora_detail::lora_launch_stream_expand(e.dtype, es, ea, stream)
                     : lora_detail::lora_launch_expand(e.dtype, es, ea, stream);
}

}  // namespace punica::cuda
