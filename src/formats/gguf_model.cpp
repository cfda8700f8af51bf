#include "formats/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "formats/gguf_dequant.h"

namespace punica {

namespace {

constexpr int64_t kMaxHidden = 1 << 16;
constexpr int64_t kMaxIntermediate = 1 << 20;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxPositions = int64_t{1} << 26;

class GgufConfigReader {
 public:
  GgufConfigReader(const GgufFile& f, std::string arch) : f_(f), arch_(std::move(arch)) {}

  std::string key(const std::string& suffix) const { return arch_ + "." + suffix; }
  Status fail(const std::string& k, const std::string& msg) const {
    return invalid_file(f_.path() + ": metadata key '" + k + "': " + msg);
  }
  Expected<int64_t> int_in(const std::string& suffix, int64_t lo, int64_t hi, std::optional<int64_t> dflt) const {
    const std::string k = key(suffix);
    if (!f_.find(k)) {
      if (dflt) return *dflt;
      return not_found(f_.path() + ": metadata key '" + k + "' is missing");
    }
    PUNICA_ASSIGN_OR_RETURN(int64_t v, f_.get_int(k));
    if (v < lo || v > hi)
      return fail(k, std::to_string(v) + " is out of range (expected " + std::to_string(lo) + ".." +
                         std::to_string(hi) + ")");
    return v;
  }
  Expected<double> num_in(const std::string& suffix, double lo, double hi, double dflt) const {
    const std::string k = key(suffix);
    if (!f_.find(k)) return dflt;
    PUNICA_ASSIGN_OR_RETURN(double v, f_.get_float(k));
    if (!(v > lo && v <= hi))
      return fail(k, std::to_string(v) + " is out of range (expected > " + std::to_string(lo) + " and <= " +
                         std::to_string(hi) + ")");
    return v;
  }

 private:
  const GgufFile& f_;
  std::string arch_;
};

Status gguf_read_rope_scaling(const GgufFile& f, const GgufConfigReader& r, ModelConfig* c) {
  std::string type = "none";
  if (f.find(r.key("rope.scaling.type"))) {
    PUNICA_ASSIGN_OR_RETURN(type, f.get_string(r.key("rope.scaling.type")));
  } else if (f.find(r.key("rope.scale_linear"))) {   // older files
    type = "linear";
  }
  if (type == "none") return {};
  if (type == "linear") {
    c->rope_scaling.type = RopeScalingType::kLinear;
    const std::string fk = f.find(r.key("rope.scaling.factor")) ? "rope.scaling.factor" : "rope.scale_linear";
    PUNICA_ASSIGN_OR_RETURN(c->rope_scaling.factor, r.num_in(fk, 0.0, 1e6, 1.0));
    PUNICA_ASSIGN_OR_RETURN(c->rope_scaling.original_max_position_embeddings,
                            r.int_in("rope.scaling.original_context_length", 1, kMaxPositions, int64_t{0}));
    return {};
  }
  return unsupported(f.path() + ": metadata key '" + r.key("rope.scaling.type") + "': '" + type +
                     "' is not supported (expected none or linear)");
}

// llama3-style scaling lives in the tensor rope_freqs.weight: head_dim/2 f32 divisors.
Status gguf_read_rope_freqs(const GgufFile& f, ModelConfig* c) {
  const GgufTensorInfo* t = f.find_tensor("rope_freqs.weight");
  if (!t) return {};
  if (t->dims.size() != 1 || t->dims[0] != c->head_dim / 2)
    return invalid_file(f.path() + ": tensor 'rope_freqs.weight': expected shape [" +
                        std::to_string(c->head_dim / 2) + "] (head_dim / 2)");
  c->rope_freq_factors.resize(static_cast<size_t>(t->dims[0]));
  Status st = gguf_dequantize(t->type_id, f.tensor_data(*t), t->n_bytes, c->rope_freq_factors.data(), t->dims[0]);
  if (!st.is_ok()) return Status(st.code(), f.path() + ": tensor 'rope_freqs.weight': " + st.message());
  for (float v : c->rope_freq_factors)
    if (!(v > 0.0f) || !std::isfinite(v))
      return invalid_file(f.path() + ": tensor 'rope_freqs.weight': factors must be finite and > 0");
  return {};
}

}  // namespace

Expected<ModelConfig> gguf_model_config(const GgufFile& f) {
  ModelConfig c;
  PUNICA_ASSIGN_OR_RETURN(c.architecture, f.get_string("general.architecture"));
  if (c.architecture != "llama" && c.architecture != "mistral" && c.architecture != "qwen2")
    return unsupported(f.path() + ": metadata key 'general.architecture': '" + c.architecture +
                       "' is not supported (expected llama, mistral or qwen2)");
  GgufConfigReader r(f, c.architecture);
  PUNICA_ASSIGN_OR_RETURN(c.hidden_size, r.int_in("embedding_length", 1, kMaxHidden, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.intermediate_size, r.int_in("feed_forward_length", 1, kMaxIntermediate, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.num_hidden_layers, r.int_in("block_count", 1, kMaxLayers, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.num_attention_heads, r.int_in("attention.head_count", 1, kMaxHeads, std::nullopt));
  PUNICA_ASSIGN_OR_RETURN(c.num_key_value_heads,
                          r.int_in("attention.head_count_kv", 1, kMaxHeads, c.num_attention_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return r.fail(r.key("attention.head_count_kv"), std::to_string(c.num_key_value_heads) +
                                                         " does not divide the head count " +
                                                         std::to_string(c.num_attention_heads));
  const int64_t default_head_dim =
      c.hidden_size % c.num_attention_heads == 0 ? c.hidden_size / c.num_attention_heads : 0;
  PUNICA_ASSIGN_OR_RETURN(c.head_dim, r.int_in("attention.key_length", 1, 1024,
                                               default_head_dim ? std::optional<int64_t>(default_head_dim)
                                                                : std::nullopt));
  if (c.head_dim % 2 != 0) return r.fail(r.key("attention.key_length"), "head dim must be even for RoPE");
  PUNICA_ASSIGN_OR_RETURN(int64_t value_length, r.int_in("attention.value_length", 1, 1024, c.head_dim));
  if (value_length != c.head_dim)
    return unsupported(f.path() + ": metadata key '" + r.key("attention.value_length") + "': " +
                       std::to_string(value_length) + " differs from the key length " + std::to_string(c.head_dim));
  PUNICA_ASSIGN_OR_RETURN(int64_t rope_dims, r.int_in("rope.dimension_count", 1, 1024, c.head_dim));
  if (rope_dims != c.head_dim)
    return unsupported(f.path() + ": metadata key '" + r.key("rope.dimension_count") + "': partial rotary (" +
                       std::to_string(rope_dims) + " of " + std::to_string(c.head_dim) + " dims) is not supported");
  PUNICA_ASSIGN_OR_RETURN(c.max_position_embeddings, r.int_in("context_length", 1, kMaxPositions, int64_t{2048}));
  PUNICA_ASSIGN_OR_RETURN(c.rms_norm_eps, r.num_in("attention.layer_norm_rms_epsilon", 0.0, 1.0, 1e-6));
  PUNICA_ASSIGN_OR_RETURN(c.rope_theta, r.num_in("rope.freq_base", 0.0, 1e12, 10000.0));
  PUNICA_RETURN_IF_ERROR(gguf_read_rope_scaling(f, r, &c));
  PUNICA_RETURN_IF_ERROR(gguf_read_rope_freqs(f, &c));
  // qwen2 always has q/k/v biases; otherwise follow the file.
  c.attention_bias = c.architecture == "qwen2" || f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;

  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) return not_found(f.path() + ": tensor 'token_embd.weight' is missing");
  if (embd->dims.size() != 2)
    return invalid_file(f.path() + ": tensor 'token_embd.weight': expected 2 dims, found " +
                        std::to_string(embd->dims.size()));
  c.vocab_size = embd->dims[1];
  if (const GgufValue* toks = f.find("tokenizer.ggml.tokens");
      toks && toks->type() == GgufType::kArray && int64_t(toks->array_size()) > c.vocab_size)
    return invalid_file(f.path() + ": metadata key 'tokenizer.ggml.tokens': " + std::to_string(toks->array_size()) +
                        " tokens, more than the " + std::to_string(c.vocab_size) + " rows of token_embd.weight");
  auto token_id = [&](const char* k) -> Expected<std::optional<int64_t>> {
    if (!f.find(k)) return std::optional<int64_t>();
    PUNICA_ASSIGN_OR_RETURN(int64_t id, f.get_int(k));
    if (id < 0 || id >= c.vocab_size)
      return invalid_file(f.path() + ": metadata key '" + k + "': token id " + std::to_string(id) +
                          " is outside the vocabulary of " + std::to_string(c.vocab_size));
    return std::optional<int64_t>(id);
  };
  PUNICA_ASSIGN_OR_RETURN(c.bos_token_id, token_id("tokenizer.ggml.bos_token_id"));
  // eos, then end-of-turn / end-of-message ids (llama.cpp stops on all of them).
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    PUNICA_ASSIGN_OR_RETURN(auto id, token_id(k));
    if (id && std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), *id) == c.eos_token_ids.end())
      c.eos_token_ids.push_back(*id);
  }
  return c;
}

std::optional<std::string> gguf_tensor_name_to_hf(std::string_view g) {
  static const std::unordered_map<std::string_view, std::string_view> kTop = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  if (auto it = kTop.find(g); it != kTop.end()) return std::string(it->second);
  static const std::unordered_map<std::string_view, std::string_view> kLayer = {
      {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},  {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},    {"attn_norm", "input_layernorm"},
      {"ffn_norm", "post_attention_layernorm"},
  };
  if (g.substr(0, 4) != "blk.") return std::nullopt;
  std::string_view rest = g.substr(4);
  size_t dot = rest.find('.');
  if (dot == 0 || dot == std::string_view::npos) return std::nullopt;
  std::string_view layer = rest.substr(0, dot);
  for (char ch : layer)
    if (ch < '0' || ch > '9') return std::nullopt;
  rest = rest.substr(dot + 1);
  size_t dot2 = rest.rfind('.');
  if (dot2 == std::string_view::npos) return std::nullopt;
  std::string_view kind = rest.substr(0, dot2), suffix = rest.substr(dot2 + 1);
  if (suffix != "weight" && suffix != "bias") return std::nullopt;
  auto it = kLayer.find(kind);
  if (it == kLayer.end()) return std::nullopt;
  return "model.layers." + std::string(layer) + "." + std::string(it->second) + "." + std::string(suffix);
}

namespace {

class GgufWeightSource : public WeightSource {
 public:
  GgufWeightSource(std::shared_ptr<const GgufFile> f, const ModelConfig& c) : f_(std::move(f)) {
    const bool permuted = c.architecture == "llama" || c.architecture == "mistral";
    for (const auto& t : f_->tensors()) {
      auto hf = gguf_tensor_name_to_hf(t.name);
      if (!hf) continue;   // rope_freqs.weight etc.: consumed by the config, not a model weight
      Entry e;
      e.gguf = &t;
      e.info.name = *hf;
      e.info.shape.assign(t.dims.rbegin(), t.dims.rend());   // GGUF is innermost first
      e.info.storage_type = ggml_type_name(t.type_id);
      // llama.cpp's converter interleaved the two RoPE halves of each q/k head; undo it per row.
      if (permuted && hf->find(".self_attn.q_proj.") != std::string::npos) e.permute_heads = c.num_attention_heads;
      if (permuted && hf->find(".self_attn.k_proj.") != std::string::npos) e.permute_heads = c.num_key_value_heads;
      names_.push_back(*hf);
      entries_.emplace(*hf, std::move(e));
    }
  }

  const std::string& path() const override { return f_->path(); }
  std::vector<std::string> tensor_names() const override { return names_; }
  const TensorInfo* find(const std::string& hf_name) const override {
    auto it = entries_.find(hf_name);
    return it == entries_.end() ? nullptr : &it->second.info;
  }

  Status read_f32(const std::string& hf_name, float* out, int64_t numel) const override {
    auto it = entries_.find(hf_name);
    if (it == entries_.end()) return not_found(path() + ": tensor '" + hf_name + "' is not in the model");
    const Entry& e = it->second;
    const GgufTensorInfo& t = *e.gguf;
    auto where = [&] { return path() + ": tensor '" + t.name + "' (" + hf_name + ")"; };
    if (numel != t.numel())
      return invalid_argument(where() + ": asked for " + std::to_string(numel) + " elements, it has " +
                              std::to_string(t.numel()));
    const int64_t cols = row_length(e);
    const int64_t rows = t.numel() / cols;
    const uint64_t row_bytes = t.n_bytes / static_cast<uint64_t>(rows);
    PUNICA_ASSIGN_OR_RETURN(auto order, row_order(e, rows));
    const uint8_t* base = f_->tensor_data(t);
    if (order.empty()) {
      Status st = gguf_dequantize(t.type_id, base, t.n_bytes, out, numel);
      if (!st.is_ok()) return Status(st.code(), where() + ": " + st.message());
      return {};
    }
    for (int64_t r = 0; r < rows; ++r) {
      Status st = gguf_dequantize(t.type_id, base + static_cast<uint64_t>(order[r]) * row_bytes, row_bytes,
                                  out + r * cols, cols);
      if (!st.is_ok()) return Status(st.code(), where() + ": " + st.message());
    }
    return {};
  }

  Expected<QuantizedRows> read_quantized_rows(const std::string& hf_name) const override {
    auto it = entries_.find(hf_name);
    if (it == entries_.end()) return not_found(path() + ": tensor '" + hf_name + "' is not in the model");
    const Entry& e = it->second;
    const GgufTensorInfo& t = *e.gguf;
    QuantizedRows q;
    q.storage_type = ggml_type_name(t.type_id);
    q.cols = row_length(e);
    q.rows = t.numel() / q.cols;
    q.row_bytes = static_cast<int64_t>(t.n_bytes) / q.rows;
    PUNICA_ASSIGN_OR_RETURN(auto order, row_order(e, q.rows));
    const uint8_t* base = f_->tensor_data(t);
    q.data.resize(t.n_bytes);
    if (order.empty()) {
      std::memcpy(q.data.data(), base, t.n_bytes);
    } else {
      for (int64_t r = 0; r < q.rows; ++r)
        std::memcpy(q.data.data() + r * q.row_bytes, base + order[r] * q.row_bytes, static_cast<size_t>(q.row_bytes));
    }
    return q;
  }

 private:
  struct Entry {
    TensorInfo info;
    const GgufTensorInfo* gguf = nullptr;
    int64_t permute_heads = 0;   // > 0: rows are llama.cpp-permuted per head
  };

  // A permuted 1-D tensor (a q/k bias) permutes single elements.
  static int64_t row_length(const Entry& e) {
    return (e.permute_heads > 0 && e.gguf->dims.size() == 1) ? 1 : e.gguf->dims[0];
  }

  // For a permuted tensor, the GGUF row that holds each HF row (empty: identity). HF row r of head h,
  // half b, index a (r = h*hd + b*hd/2 + a) sits at GGUF row h*hd + 2a + b (transformers' reverse_permute).
  Expected<std::vector<int64_t>> row_order(const Entry& e, int64_t rows) const {
    std::vector<int64_t> order;
    if (e.permute_heads <= 0) return order;
    if (rows % (2 * e.permute_heads) != 0)
      return invalid_file(path() + ": tensor '" + e.gguf->name + "': " + std::to_string(rows) +
                          " rows do not split into " + std::to_string(e.permute_heads) + " heads of even size");
    const int64_t hd = rows / e.permute_heads, half = hd / 2;
    order.resize(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t h = r / hd, rem = r % hd, b = rem / half, a = rem % half;
      order[r] = h * hd + 2 * a + b;
    }
    return order;
  }

  std::shared_ptr<const GgufFile> f_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace

std::unique_ptr<WeightSource> gguf_weight_source(std::shared_ptr<const GgufFile> file, const ModelConfig& config) {
  return std::make_unique<GgufWeightSource>(std::move(file), config);
}

}  // namespace punica
