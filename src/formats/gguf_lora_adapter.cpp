#include "formats/gguf_lora_adapter.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "formats/gguf_dequant.h"

namespace punica {
namespace {

struct GgufLoraTarget {
  LoraModule module;
  int layer;
};

// "token_embd.weight", "output.weight", "blk.N.attn_q.weight", ... -> module and layer.
bool parse_gguf_base_name(const std::string& name, int64_t num_layers, GgufLoraTarget* out) {
  if (name == "token_embd.weight") { *out = {LoraModule::kEmbedTokens, -1}; return true; }
  if (name == "output.weight") { *out = {LoraModule::kLmHead, -1}; return true; }
  if (name.rfind("blk.", 0) != 0) return false;
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos || dot == 4 || dot - 4 > 6) return false;
  int64_t layer = 0;
  for (size_t i = 4; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    layer = layer * 10 + (name[i] - '0');
  }
  if (layer >= num_layers) return false;
  static const std::pair<const char*, LoraModule> kNames[] = {
      {"attn_q.weight", LoraModule::kQ},      {"attn_k.weight", LoraModule::kK},   {"attn_v.weight", LoraModule::kV},
      {"attn_output.weight", LoraModule::kO}, {"ffn_gate.weight", LoraModule::kGate},
      {"ffn_up.weight", LoraModule::kUp},     {"ffn_down.weight", LoraModule::kDown}};
  const std::string rest = name.substr(dot + 1);
  for (const auto& [n, m] : kNames)
    if (rest == n) { *out = {m, static_cast<int>(layer)}; return true; }
  return false;
}

std::string dims_string(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// Inverse of llama.cpp's permute(w, n_head): GGUF row h*hd + 2*i + j holds HF row h*hd + j*hd/2 + i.
void unpermute_rows(std::vector<float>& w, int64_t rows, int64_t cols, int64_t n_head) {
  const int64_t hd = rows / n_head, half = hd / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::copy_n(&w[(h * hd + 2 * i + j) * cols], cols, &out[(h * hd + j * half + i) * cols]);
  w.swap(out);
}

}  // namespace

Expected<LoraAdapter> gguf_lora_adapter_from_file(const GgufFile& f, const ModelConfig& base,
                                                  const LoraLoadOptions& options) {
  const std::string& src = f.path();
  auto type = f.get_string("general.type");
  if (!type || *type != "adapter")
    return invalid_file(src + ": key 'general.type': expected \"adapter\" (is this a base model, not a LoRA adapter?)");
  auto adapter_type = f.get_string("adapter.type");
  if (!adapter_type || *adapter_type != "lora")
    return unsupported(src + ": key 'adapter.type': expected \"lora\"" +
                       (adapter_type ? ", found \"" + *adapter_type + "\"" : std::string(", missing")));
  if (f.find("adapter.alora.invocation_tokens"))
    return unsupported(src + ": key 'adapter.alora.invocation_tokens': aLoRA adapters are not supported");
  auto arch = f.get_string("general.architecture");
  const std::string want_arch = base.architecture == "qwen2" ? "qwen2" : "llama";
  if (!arch || *arch != want_arch)
    return invalid_file(src + ": key 'general.architecture': expected \"" + want_arch + "\" for a " +
                        base.architecture + " base model" + (arch ? ", found \"" + *arch + "\"" : ", missing"));
  double alpha = 0;
  if (f.find("adapter.lora.alpha")) {
    auto a = f.get_float("adapter.lora.alpha");
    if (!a) return a.status();
    alpha = *a;
    if (!std::isfinite(alpha)) return invalid_file(src + ": key 'adapter.lora.alpha': not finite");
  }
  const bool permuted_qk = *arch == "llama";

  struct Pair { const GgufTensorInfo* a = nullptr; const GgufTensorInfo* b = nullptr; GgufLoraTarget t{}; };
  std::map<std::pair<int, int>, Pair> pairs;   // (layer, module)
  for (const GgufTensorInfo& t : f.tensors()) {
    const bool is_a = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".lora_a") == 0;
    const bool is_b = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".lora_b") == 0;
    GgufLoraTarget target{};
    if (!is_a && !is_b)
      return unsupported(src + ": tensor '" + t.name + "': not a .lora_a/.lora_b tensor (only LoRA weights are supported)");
    if (!parse_gguf_base_name(t.name.substr(0, t.name.size() - 7), base.num_hidden_layers, &target))
      return unsupported(src + ": tensor '" + t.name + "': not a supported LoRA target of this base model");
    Pair& p = pairs[{target.layer, static_cast<int>(target.module)}];
    p.t = target;
    const GgufTensorInfo*& slot = is_a ? p.a : p.b;
    if (slot) return invalid_file(src + ": tensor '" + t.name + "': duplicate");
    slot = &t;
  }
  if (pairs.empty()) return invalid_file(src + ": no LoRA tensors");

  LoraAdapter adapter;
  adapter.path = src;
  adapter.format = "gguf";
  for (auto& [key, p] : pairs) {
    const GgufTensorInfo* present = p.a ? p.a : p.b;
    const std::string stem = present->name.substr(0, present->name.size() - 7);
    if (!p.a || !p.b) return invalid_file(src + ": tensor '" + stem + (p.a ? ".lora_b" : ".lora_a") + "' missing");
    const auto [in, out] = lora_module_dims(p.t.module, base);
    const bool embed = p.t.module == LoraModule::kEmbedTokens;
    // lora_b numpy [out, rank] -> GGUF dims {rank, out}.
    if (p.b->dims.size() != 2 || p.b->dims[1] != out)
      return invalid_file(src + ": tensor '" + p.b->name + "': dims " + dims_string(p.b->dims) + ", expected [rank, " +
                          std::to_string(out) + "]");
    const int64_t rank = p.b->dims[0];
    if (rank <= 0 || rank > options.max_rank)
      return invalid_file(src + ": tensor '" + p.b->name + "': rank " + std::to_string(rank) +
                          " outside 1.." + std::to_string(options.max_rank) + " (--max-lora-rank)");
    const std::vector<int64_t> want_a = embed ? std::vector<int64_t>{rank, in} : std::vector<int64_t>{in, rank};
    if (p.a->dims != want_a)
      return invalid_file(src + ": tensor '" + p.a->name + "': dims " + dims_string(p.a->dims) + ", expected " +
                          dims_string(want_a) + " (GGUF order, innermost first)");
    LoraModuleWeights w;
    w.module = p.t.module;
    w.layer = p.t.layer;
    w.rank = static_cast<int>(rank);
    w.scale = alpha == 0 ? 1.0f : static_cast<float>(alpha / static_cast<double>(rank));
    w.in_features = in;
    w.out_features = out;
    for (const GgufTensorInfo* t : {p.a, p.b}) {
      std::vector<float>& dst = t == p.a ? w.a : w.b;
      dst.resize(static_cast<size_t>(t->numel()));
      if (!gguf_can_dequantize(t->type_id))
        return unsupported(src + ": tensor '" + t->name + "': type " + ggml_type_name(t->type_id) + " is not supported");
      Status st = gguf_dequantize(t->type_id, f.tensor_data(*t), t->n_bytes, dst.data(), t->numel());
      if (!st) return Status(st.code(), src + ": tensor '" + t->name + "': " + st.message());
      for (size_t i = 0; i < dst.size(); ++i)
        if (!std::isfinite(dst[i]))
          return invalid_file(src + ": tensor '" + t->name + "': non-finite value at element " + std::to_string(i));
    }
    if (embed) {   // stored [vocab, rank]: transpose to A [rank, vocab]
      std::vector<float> at(w.a.size());
      for (int64_t v = 0; v < in; ++v)
        for (int64_t j = 0; j < rank; ++j) at[j * in + v] = w.a[v * rank + j];
      w.a.swap(at);
    }
    if (permuted_qk && (w.module == LoraModule::kQ || w.module == LoraModule::kK)) {
      const int64_t heads = w.module == LoraModule::kQ ? base.num_attention_heads : base.num_key_value_heads;
      unpermute_rows(w.b, out, rank, heads);
    }
    adapter.max_rank = std::max(adapter.max_rank, w.rank);
    adapter.modules.push_back(std::move(w));
  }
  std::sort(adapter.modules.begin(), adapter.modules.end(), [](const LoraModuleWeights& a, const LoraModuleWeights& b) {
    return a.layer != b.layer ? a.layer < b.layer : a.module < b.module;
  });
  return adapter;
}

Expected<LoraAdapter> load_gguf_lora_adapter(const std::string& path, const ModelConfig& base,
                                             const LoraLoadOptions& options) {
  PUNICA_ASSIGN_OR_RETURN(auto file, GgufFile::open(path));
  return gguf_lora_adapter_from_file(*file, base, options);
}

}  // namespace punica
