// Runs one LoRA oracle case: random (or small-integer) inputs, the CUDA op, the CPU reference on the
// checked tokens, and the comparison (tolerance or bit-exact, NaN/Inf parity, guard bands, untouched rows).
#include "lora_oracle.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "backends/cpu/lora_cpu.h"
#include "backends/cuda/lora/lora_cuda.h"
#include "core/half.h"

namespace punica::oracle {
namespace {

constexpr int kGuard = 64;                 // elements of guard band before and after y and v
constexpr uint16_t kPoison16 = 0x7e5a;     // a NaN payload in both f16 and bf16
constexpr uint32_t kPoison32 = 0x7fc0abcdu;  // a NaN payload in f32

#define ORACLE_CUDA(call)                                                                        \
  do {                                                                                           \
    cudaError_t e_ = (call);                                                                     \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, \
                   #call);                                                                       \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

float h2f(DType t, uint16_t h) { return t == DType::kF16 ? fp16_to_float(h) : bf16_to_float(h); }
uint16_t f2h(DType t, float f) { return t == DType::kF16 ? float_to_fp16(f) : float_to_bf16(f); }

// A device buffer that frees itself.
struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t bytes) { ORACLE_CUDA(cudaMalloc(&p, std::max<size_t>(bytes, 16))); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

template <typename T>
void upload(const DevBuf& d, const std::vector<T>& h) {
  ORACLE_CUDA(cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
}
template <typename T>
void download(std::vector<T>& h, const DevBuf& d) {
  ORACLE_CUDA(cudaMemcpy(h.data(), d.p, h.size() * sizeof(T), cudaMemcpyDeviceToHost));
}

// Weights of every slot of one slice live in one pool; slot s starts 8 * (s + 1) elements further than slot
// s - 1, so all slots are different matrices without one buffer per slot.
struct WeightPool {
  std::vector<uint16_t> host;
  std::vector<int64_t> offset;  // per slot, -1 = null
};

struct CaseData {
  int T = 0, S = 0, num_slices = 0;
  int64_t x_stride = 0, y_stride = 0, v_row = 0;
  std::vector<int32_t> seg_start, seg_slot, token_slot;
  std::vector<int> col_off;
  std::vector<uint16_t> x, y0;  // y0 includes the guard bands
  std::vector<WeightPool> a, b;
  std::vector<std::vector<int32_t>> rank;
  std::vector<std::vector<float>> scale;
};

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  float uniform() { return std::uniform_real_distribution<float>(-1.f, 1.f)(g_); }
  // small integer in [-1, 1], nonzero with probability density
  float small_int(double density) {
    const double u = std::uniform_real_distribution<double>(0, 1)(g_);
    if (u >= density) return 0.f;
    return u < density / 2 ? -1.f : 1.f;
  }
  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(g_); }

 private:
  std::mt19937_64 g_;
};

CaseData make_data(const LoraOracleCase& c) {
  CaseData d;
  Rng rng(c.seed);
  d.num_slices = static_cast<int>(c.h_out.size());
  d.S = static_cast<int>(c.seg_len.size());
  d.seg_start.push_back(c.lead_tokens);
  for (int g = 0; g < d.S; ++g) d.seg_start.push_back(d.seg_start.back() + c.seg_len[g]);
  d.T = d.seg_start.back() + c.tail_tokens;
  d.seg_slot.assign(c.seg_slot.begin(), c.seg_slot.end());
  d.token_slot.assign(d.T, -1);
  for (int g = 0; g < d.S; ++g)
    for (int t = d.seg_start[g]; t < d.seg_start[g + 1]; ++t) d.token_slot[t] = d.seg_slot[g];
  int cols = 0;
  for (int w : c.h_out) {
    d.col_off.push_back(cols);
    cols += w;
  }
  d.x_stride = c.h_in + 8;   // a row pitch wider than h_in: the kernels must honour x_stride
  d.y_stride = cols + 16;    // 16 columns of y beyond every slice: must stay untouched
  d.v_row = static_cast<int64_t>(d.num_slices) * c.v_rank_stride;

  const double dx = 1.0 / 16, dw = 1.0 / 16;  // exact mode densities keep sums small
  d.x.assign(d.T * d.x_stride, f2h(c.dtype, 0.f));
  for (int t = 0; t < d.T; ++t)
    for (int k = 0; k < c.h_in; ++k)
      d.x[t * d.x_stride + k] = f2h(c.dtype, c.exact ? rng.small_int(dx) : rng.uniform());
  // the pad columns of x hold NaN: reading past h_in would poison v
  for (int t = 0; t < d.T; ++t)
    for (int k = c.h_in; k < d.x_stride; ++k) d.x[t * d.x_stride + k] = kPoison16;
  if (c.nonfinite && d.T > 0) {
    const uint16_t inf = c.dtype == DType::kF16 ? 0x7c00 : 0x7f80;
    const uint16_t nan = c.dtype == DType::kF16 ? 0x7e00 : 0x7fc0;
    for (int i = 0; i < std::max(1, d.T / 3); ++i) {
      const int t = rng.below(d.T);
      d.x[t * d.x_stride + rng.below(c.h_in)] = (i % 2) ? inf : nan;
    }
  }
  d.y0.assign(2 * kGuard + d.T * d.y_stride, kPoison16);
  for (int t = 0; t < d.T; ++t)
    for (int n = 0; n < d.y_stride; ++n)
      d.y0[kGuard + t * d.y_stride + n] = f2h(c.dtype, c.exact ? static_cast<float>(rng.below(9) - 4) : rng.uniform());

  d.rank = std::vector<std::vector<int32_t>>(d.num_slices, std::vector<int32_t>(c.num_slots, 0));
  d.scale = std::vector<std::vector<float>>(d.num_slices, std::vector<float>(c.num_slots, 0.f));
  d.a.resize(d.num_slices);
  d.b.resize(d.num_slices);
  for (int i = 0; i < d.num_slices; ++i) {
    int max_r = 1;
    for (int s = 0; s < c.num_slots; ++s) {
      d.rank[i][s] = c.rank[i][s];
      max_r = std::max(max_r, c.rank[i][s]);
      const float pow2[] = {0.25f, 0.5f, 1.f, 2.f};
      d.scale[i][s] = c.exact ? pow2[rng.below(4)] : 0.25f + 1.75f * std::abs(rng.uniform());
    }
    const int64_t shift = 8;
    const int64_t a_len = static_cast<int64_t>(max_r) * c.h_in + shift * (c.num_slots + 1);
    const int64_t b_skew = c.b_unaligned ? 1 : 0;  // elements
    const int64_t b_len = static_cast<int64_t>(c.h_out[i]) * max_r + shift * (c.num_slots + 1) + b_skew;
    const float a_amp = 1.f / std::sqrt(static_cast<float>(c.h_in) / 3.f);
    const float b_amp = 1.f / std::sqrt(static_cast<float>(max_r) / 3.f);
    d.a[i].host.resize(a_len);
    for (auto& e : d.a[i].host) e = f2h(c.dtype, c.exact ? rng.small_int(dw) : a_amp * rng.uniform());
    d.b[i].host.resize(b_len);
    for (auto& e : d.b[i].host) e = f2h(c.dtype, c.exact ? rng.small_int(0.25) : b_amp * rng.uniform());
    for (int s = 0; s < c.num_slots; ++s) {
      d.a[i].offset.push_back(d.rank[i][s] > 0 ? shift * (s + 1) : -1);
      d.b[i].offset.push_back(d.rank[i][s] > 0 ? shift * (s + 1) + b_skew : -1);
    }
  }
  return d;
}

// The CPU reference on the tokens in `tokens` (each as a one-token segment), split over threads.
void reference(const LoraOracleCase& c, const CaseData& d, const std::vector<int>& tokens, std::vector<float>& v,
               std::vector<uint16_t>& y) {
  std::vector<std::vector<const void*>> a_tab(d.num_slices), b_tab(d.num_slices);
  for (int i = 0; i < d.num_slices; ++i)
    for (int s = 0; s < c.num_slots; ++s) {
      a_tab[i].push_back(d.a[i].offset[s] < 0 ? nullptr : d.a[i].host.data() + d.a[i].offset[s]);
      b_tab[i].push_back(d.b[i].offset[s] < 0 ? nullptr : d.b[i].host.data() + d.b[i].offset[s]);
    }
  const int nthreads = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int w = 0; w < nthreads; ++w) {
    pool.emplace_back([&, w] {
      std::vector<int32_t> starts, slots;
      for (size_t i = w; i < tokens.size(); i += nthreads) {
        starts.push_back(tokens[i]);
        slots.push_back(d.token_slot[tokens[i]]);
      }
      if (starts.empty()) return;
      // one-token segments: seg_start[g] = token, seg_start[g + 1] must be token + 1, so interleave via a
      // per-token call (segments must be non-decreasing; the tokens of one thread are increasing but not
      // contiguous)
      for (size_t g = 0; g < starts.size(); ++g) {
        const int32_t ss[2] = {starts[g], starts[g] + 1};
        ops::LoraSegments seg;
        seg.num_tokens = d.T;
        seg.num_segments = 1;
        seg.seg_start = ss;
        seg.seg_slot = &slots[g];
        seg.max_seg_len = 1;
        seg.num_adapted_segments = slots[g] >= 0;
        ops::LoraShrinkParams sp;
        sp.dtype = c.dtype;
        sp.x = d.x.data();
        sp.x_stride = d.x_stride;
        sp.h_in = c.h_in;
        sp.num_slices = d.num_slices;
        sp.num_slots = c.num_slots;
        sp.v = v.data();
        sp.v_rank_stride = c.v_rank_stride;
        sp.seg = seg;
        ops::LoraExpandParams ep;
        ep.dtype = c.dtype;
        ep.v = v.data();
        ep.v_rank_stride = c.v_rank_stride;
        ep.y = y.data() + kGuard;
        ep.y_stride = d.y_stride;
        ep.num_slices = d.num_slices;
        ep.num_slots = c.num_slots;
        ep.seg = seg;
        for (int i = 0; i < d.num_slices; ++i) {
          ops::LoraSliceTable tab;
          tab.rank = d.rank[i].data();
          tab.scale = d.scale[i].data();
          tab.h_out = c.h_out[i];
          tab.y_col_offset = d.col_off[i];
          tab.a = a_tab[i].data();
          tab.b = b_tab[i].data();
          sp.slices[i] = tab;
          ep.slices[i] = tab;
        }
        Status st = cpu::lora_shrink(sp);
        if (st.is_ok()) st = cpu::lora_expand(ep);
        if (!st.is_ok()) {
          std::fprintf(stderr, "reference failed: %s\n", st.to_string().c_str());
          std::abort();
        }
      }
    });
  }
  for (auto& t : pool) t.join();
}

// The GPU side: uploads, runs the op along c.path, downloads y and v (with guards).
Status run_gpu(const LoraOracleCase& c, const CaseData& d, void* ws, size_t ws_bytes, std::vector<uint16_t>& y,
               std::vector<float>& v) {
  const size_t v_elems = 2 * kGuard + static_cast<size_t>(d.T) * d.v_row;
  DevBuf dx(d.x.size() * 2), dy(d.y0.size() * 2), dv(v_elems * 4);
  DevBuf dseg_start(d.seg_start.size() * 4), dseg_slot(d.seg_slot.size() * 4), dtok(d.token_slot.size() * 4);
  upload(dx, d.x);
  upload(dy, d.y0);
  std::vector<uint32_t> vpoison(v_elems, kPoison32);
  upload(dv, vpoison);
  upload(dseg_start, d.seg_start);
  if (!d.seg_slot.empty()) upload(dseg_slot, d.seg_slot);
  if (!d.token_slot.empty()) upload(dtok, d.token_slot);

  std::vector<std::unique_ptr<DevBuf>> keep;
  ops::LoraShrinkParams sp;
  ops::LoraExpandParams ep;
  ops::LoraSegments seg;
  seg.num_tokens = d.T;
  seg.num_segments = d.S;
  seg.seg_start = dseg_start.as<int32_t>();
  seg.seg_slot = dseg_slot.as<int32_t>();
  seg.token_slot = dtok.as<int32_t>();
  for (int g = 0; g < d.S; ++g) {
    seg.max_seg_len = std::max(seg.max_seg_len, c.seg_len[g]);
    seg.num_adapted_segments += d.seg_slot[g] >= 0;
    if (d.seg_slot[g] >= 0) seg.max_adapted_seg_len = std::max(seg.max_adapted_seg_len, c.seg_len[g]);
  }
  for (int i = 0; i < d.num_slices; ++i) {
    auto pa = std::make_unique<DevBuf>(d.a[i].host.size() * 2);
    auto pb = std::make_unique<DevBuf>(d.b[i].host.size() * 2);
    upload(*pa, d.a[i].host);
    upload(*pb, d.b[i].host);
    std::vector<const void*> at, bt;
    for (int s = 0; s < c.num_slots; ++s) {
      at.push_back(d.a[i].offset[s] < 0 ? nullptr : pa->as<uint16_t>() + d.a[i].offset[s]);
      bt.push_back(d.b[i].offset[s] < 0 ? nullptr : pb->as<uint16_t>() + d.b[i].offset[s]);
    }
    auto ta = std::make_unique<DevBuf>(at.size() * sizeof(void*));
    auto tb = std::make_unique<DevBuf>(bt.size() * sizeof(void*));
    auto tr = std::make_unique<DevBuf>(c.num_slots * 4);
    auto ts = std::make_unique<DevBuf>(c.num_slots * 4);
    upload(*ta, at);
    upload(*tb, bt);
    upload(*tr, d.rank[i]);
    upload(*ts, d.scale[i]);
    ops::LoraSliceTable tab;
    tab.a = ta->as<const void* const>();
    tab.b = tb->as<const void* const>();
    tab.rank = tr->as<int32_t>();
    tab.scale = ts->as<float>();
    tab.h_out = c.h_out[i];
    tab.y_col_offset = d.col_off[i];
    sp.slices[i] = tab;
    ep.slices[i] = tab;
    for (auto* p : {&pa, &pb, &ta, &tb, &tr, &ts}) keep.push_back(std::move(*p));
  }
  sp.dtype = ep.dtype = c.dtype;
  sp.x = dx.p;
  sp.x_stride = d.x_stride;
  sp.h_in = c.h_in;
  sp.num_slices = ep.num_slices = d.num_slices;
  sp.num_slots = ep.num_slots = c.num_slots;
  sp.v = dv.as<float>() + kGuard;
  ep.v = sp.v;
  sp.v_rank_stride = ep.v_rank_stride = c.v_rank_stride;
  sp.seg = ep.seg = seg;
  ep.y = dy.as<uint16_t>() + kGuard;
  ep.y_stride = d.y_stride;

  cudaStream_t stream;
  ORACLE_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const cuda::LoraWorkspace w{ws, ws_bytes};
  Status st;
  if (c.path == LoraPath::kSeparate) {
    st = cuda::lora_shrink(sp, w, stream);
    if (st.is_ok()) st = cuda::lora_expand(ep, stream);
  } else if (c.path == LoraPath::kFused) {
    st = cuda::lora_add(sp, ep, w, stream);
  } else {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    ORACLE_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    st = cuda::lora_add(sp, ep, w, stream);
    ORACLE_CUDA(cudaStreamEndCapture(stream, &graph));
    if (st.is_ok()) {
      ORACLE_CUDA(cudaGraphInstantiate(&exec, graph, 0));
      ORACLE_CUDA(cudaGraphLaunch(exec, stream));
      ORACLE_CUDA(cudaGraphExecDestroy(exec));
    }
    ORACLE_CUDA(cudaGraphDestroy(graph));
  }
  ORACLE_CUDA(cudaStreamSynchronize(stream));
  ORACLE_CUDA(cudaGetLastError());
  ORACLE_CUDA(cudaStreamDestroy(stream));
  y.resize(d.y0.size());
  v.resize(v_elems);
  download(y, dy);
  download(v, dv);
  return st;
}

bool same_class(float a, float b) {  // NaN/Inf parity: same non-finite class, or both finite
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return true;
}

float ulp_at(DType t, float f) {
  const uint16_t h = f2h(t, std::abs(f));
  return std::abs(h2f(t, static_cast<uint16_t>(h + 1)) - h2f(t, h));
}

}  // namespace

LoraOracle::LoraOracle() {
  ws_bytes_ = cuda::lora_workspace_size();
  ORACLE_CUDA(cudaMalloc(&ws_, ws_bytes_));
  const Status st = cuda::lora_workspace_init({ws_, ws_bytes_}, nullptr);
  if (!st.is_ok()) std::abort();
  ORACLE_CUDA(cudaDeviceSynchronize());
}

LoraOracle::~LoraOracle() { cudaFree(ws_); }

LoraOracleResult LoraOracle::run(const LoraOracleCase& c) {
  LoraOracleResult res;
  const CaseData d = make_data(c);
  std::vector<uint16_t> y;
  std::vector<float> v;
  const Status st = run_gpu(c, d, ws_, ws_bytes_, y, v);
  const char* path = c.path == LoraPath::kSeparate ? "separate" : c.path == LoraPath::kFused ? "fused" : "graph";
  int max_r = 0;
  for (auto& rr : c.rank)
    for (int r : rr) max_r = std::max(max_r, r);
  char head[256];
  std::snprintf(head, sizeof head, "%-34s %-4s T=%-5d S=%-4d h_in=%-5d slices=%d r<=%-3d %-8s", c.name.c_str(),
                std::string(dtype_name(c.dtype)).c_str(), d.T, d.S, c.h_in, d.num_slices, max_r, path);
  if (!st.is_ok()) {
    res.line = std::string(head) + " FAIL: op returned " + st.to_string();
    return res;
  }
  std::vector<int> checked;
  for (int t = 0; t < d.T; ++t)
    if (d.token_slot[t] >= 0 && (t % c.check_stride == 0 || t == d.T - 1)) checked.push_back(t);
  std::vector<float> vref(d.T * d.v_row + 1, 0.f);
  std::vector<uint16_t> yref = d.y0;
  reference(c, d, checked, vref, yref);

  std::ostringstream fail;
  int64_t failures = 0;
  auto note = [&](const std::string& what) {
    if (failures++ == 0) fail << what;
  };
  // guard bands and pad columns: bit for bit untouched
  for (int i = 0; i < kGuard; ++i) {
    if (y[i] != d.y0[i]) note("y guard before start written");
    if (y[y.size() - 1 - i] != d.y0[y.size() - 1 - i]) note("y guard after end written");
    uint32_t a, b;
    std::memcpy(&a, &v[i], 4);
    std::memcpy(&b, &v[v.size() - 1 - i], 4);
    if (a != kPoison32 || b != kPoison32) note("v guard written");
  }
  std::vector<char> is_checked(d.T, 0);
  for (int t : checked) is_checked[t] = 1;
  double err2 = 0, ref2 = 0, worst = 0;
  for (int t = 0; t < d.T; ++t) {
    const int slot = d.token_slot[t];
    for (int64_t n = 0; n < d.y_stride; ++n) {
      const int64_t i = kGuard + t * d.y_stride + n;
      int slice = -1;
      for (int s = 0; s < d.num_slices; ++s)
        if (n >= d.col_off[s] && n < d.col_off[s] + c.h_out[s]) slice = s;
      const bool adapted = slot >= 0 && slice >= 0 && d.rank[slice][slot] > 0;
      if (!adapted) {
        if (y[i] != d.y0[i]) {
          note("token " + std::to_string(t) + " col " + std::to_string(n) + ": written but not adapted");
        }
        continue;
      }
      if (!is_checked[t]) continue;
      const float got = h2f(c.dtype, y[i]), ref = h2f(c.dtype, yref[i]), old = h2f(c.dtype, d.y0[i]);
      if (c.exact) {
        if (y[i] != yref[i])
          note("token " + std::to_string(t) + " col " + std::to_string(n) + ": got " + std::to_string(got) +
               " want " + std::to_string(ref) + " (exact mode)");
        continue;
      }
      if (!same_class(got, ref)) {
        note("token " + std::to_string(t) + " col " + std::to_string(n) + ": NaN/Inf parity, got " +
             std::to_string(got) + " want " + std::to_string(ref));
        continue;
      }
      if (!std::isfinite(ref)) continue;
      const double e = std::abs(static_cast<double>(got) - ref);
      err2 += e * e;
      ref2 += static_cast<double>(ref - old) * (ref - old);
      (void)worst;
    }
  }
  // tolerance: |got - ref| <= atol * rms(ref delta) + rtol * |ref| + one ulp (a rounding flip of y)
  const double rtol = 5e-3, atol = 3e-2;
  double checked_elems = 0;
  for (int t : checked) {
    const int slot = d.token_slot[t];
    for (int s = 0; s < d.num_slices; ++s) checked_elems += d.rank[s][slot] > 0 ? c.h_out[s] : 0;
  }
  const double delta_rms = checked_elems > 0 ? std::sqrt(ref2 / checked_elems) : 0;
  double max_ratio = 0;
  if (!c.exact) {
    for (int t : checked) {
      const int slot = d.token_slot[t];
      for (int s = 0; s < d.num_slices; ++s) {
        if (d.rank[s][slot] == 0) continue;
        for (int n = 0; n < c.h_out[s]; ++n) {
          const int64_t i = kGuard + t * d.y_stride + d.col_off[s] + n;
          const float got = h2f(c.dtype, y[i]), ref = h2f(c.dtype, yref[i]);
          if (!std::isfinite(ref)) continue;
          const double tol = atol * delta_rms + rtol * std::abs(ref) + ulp_at(c.dtype, ref);
          const double ratio = std::abs(static_cast<double>(got) - ref) / tol;
          max_ratio = std::max(max_ratio, ratio);
          if (ratio > 1)
            note("token " + std::to_string(t) + " slice " + std::to_string(s) + " col " + std::to_string(n) +
                 ": got " + std::to_string(got) + " want " + std::to_string(ref) + " tol " + std::to_string(tol));
        }
      }
    }
  }
  // v: adapted rows hold x @ A^T for j < rank (fp32; tolerance 1e-4 relative to |v| + 1), the
  // rest keeps the poison (the contract writes v only for j < rank of adapted rows).
  for (int t = 0; t < d.T; ++t) {
    const int slot = d.token_slot[t];
    for (int s = 0; s < d.num_slices; ++s) {
      const int r = slot >= 0 ? d.rank[s][slot] : 0;
      const int64_t base = kGuard + t * d.v_row + static_cast<int64_t>(s) * c.v_rank_stride;
      for (int j = 0; j < c.v_rank_stride; ++j) {
        uint32_t bits;
        std::memcpy(&bits, &v[base + j], 4);
        if (j >= r) {
          if (bits != kPoison32) note("v token " + std::to_string(t) + " j " + std::to_string(j) + " written");
          continue;
        }
        if (!is_checked[t]) continue;
        const float got = v[base + j], ref = vref[base - kGuard + j];
        if (!same_class(got, ref)) {
          note("v token " + std::to_string(t) + " j " + std::to_string(j) + ": NaN/Inf parity");
          continue;
        }
        if (!std::isfinite(ref)) continue;
        // v is ~N(0, 1/3); the tensor cores' fp32 accumulation truncates, which over h_in = 14336 gives
        // ~4e-5 relative error (seen on H100), so 1e-4 relative to |v| + 1.
        const double tol = c.exact ? 0.0 : 1e-4 * (std::abs(ref) + 1.0);
        if (std::abs(static_cast<double>(got) - ref) > tol)
          note("v token " + std::to_string(t) + " j " + std::to_string(j) + ": got " + std::to_string(got) +
               " want " + std::to_string(ref));
      }
    }
  }
  const double nmse = ref2 > 0 ? err2 / ref2 : 0;
  if (!c.exact && nmse > 1e-5) note("NMSE of y delta " + std::to_string(nmse) + " > 1e-5");
  char tail[200];
  std::snprintf(tail, sizeof tail, " checked=%zu/%d max_err/tol=%.3f nmse=%.2e", checked.size(), d.T, max_ratio,
                nmse);
  res.pass = failures == 0;
  res.line = std::string(head) + tail + (res.pass ? " PASS" : " FAIL (" + std::to_string(failures) + "): " + fail.str());
  return res;
}

}  // namespace punica::oracle
