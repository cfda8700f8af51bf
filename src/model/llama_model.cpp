#include "model/llama_model.h"

#include <cstring>

namespace punica::model {
namespace {

Status read_vector(const WeightSource& ws, const std::string& name, int64_t numel, std::vector<float>* out) {
  const TensorInfo* info = ws.find(name);
  if (!info) return not_found(ws.path() + ": tensor '" + name + "' is missing");
  if (info->numel() != numel)
    return invalid_file(ws.path() + ": tensor '" + name + "' has " + std::to_string(info->numel()) +
                        " elements, expected " + std::to_string(numel));
  out->resize(static_cast<size_t>(numel));
  return ws.read_f32(name, out->data(), numel);
}

Status read_linear(const WeightSource& ws, const std::string& name, int64_t rows, int64_t cols,
                   const LoadOptions& opt, StoredLinear* out) {
  const TensorInfo* info = ws.find(name);
  if (!info) return not_found(ws.path() + ": tensor '" + name + "' is missing");
  if (info->shape.size() != 2 || info->shape[0] != rows || info->shape[1] != cols)
    return invalid_file(ws.path() + ": tensor '" + name + "' has the wrong shape, expected [" +
                        std::to_string(rows) + ", " + std::to_string(cols) + "]");
  if (opt.keep_quantized && info->storage_type != "F32") {
    auto q = ws.read_quantized_rows(name);
    ops::LinearWeightFormat f;
    if (q.has_value() && ops::linear_weight_format_from_name(q->storage_type.c_str(), &f) && q->rows == rows &&
        q->cols == cols && q->cols % ops::linear_weight_block_elems(f) == 0 &&
        q->row_bytes == cols / ops::linear_weight_block_elems(f) * ops::linear_weight_block_bytes(f) &&
        static_cast<int64_t>(q->data.size()) == rows * q->row_bytes) {
      out->bytes = std::move(q->data);
      out->w = {f, out->bytes.data(), rows, cols, q->row_bytes};
      return Status::ok();
    }
    // Unsupported or unknown block format: fall through to f32.
  }
  out->bytes.resize(static_cast<size_t>(rows * cols) * sizeof(float));
  PUNICA_RETURN_IF_ERROR(ws.read_f32(name, reinterpret_cast<float*>(out->bytes.data()), rows * cols));
  out->w = {ops::LinearWeightFormat::kF32, out->bytes.data(), rows, cols, cols * 4};
  return Status::ok();
}

}  // namespace

const char* module_name(Module m) {
  switch (m) {
    case Module::kQ: return "q_proj";
    case Module::kK: return "k_proj";
    case Module::kV: return "v_proj";
    case Module::kO: return "o_proj";
    case Module::kGate: return "gate_proj";
    case Module::kUp: return "up_proj";
    case Module::kDown: return "down_proj";
  }
  return "?";
}

Expected<std::unique_ptr<LlamaModel>> LlamaModel::load(ModelFiles files, ops::Backend& backend,
                                                       const LoadOptions& opt) {
  const ModelConfig& c = files.config;
  if (!files.weights) return invalid_argument("model: no weight source");
  const WeightSource& ws = *files.weights;
  if (c.hidden_size < 1 || c.num_hidden_layers < 1 || c.vocab_size < 1 || c.num_attention_heads < 1 ||
      c.num_key_value_heads < 1 || c.head_dim < 2 || c.head_dim % 2 != 0 || c.intermediate_size < 1 ||
      c.num_attention_heads % c.num_key_value_heads != 0)
    return invalid_file(ws.path() + ": model config has invalid sizes (hidden, layers, heads, head_dim, vocab)");
  std::unique_ptr<LlamaModel> m(new LlamaModel(c, backend));
  const int64_t H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  PUNICA_RETURN_IF_ERROR(read_linear(ws, "model.embed_tokens.weight", c.vocab_size, H, opt, &m->embed_));
  if (c.tie_word_embeddings || !ws.find("lm_head.weight")) {
    if (!c.tie_word_embeddings && !ws.find("lm_head.weight"))
      return not_found(ws.path() + ": tensor 'lm_head.weight' is missing and embeddings are not tied");
    m->lm_head_.w = m->embed_.w;
  } else {
    PUNICA_RETURN_IF_ERROR(read_linear(ws, "lm_head.weight", c.vocab_size, H, opt, &m->lm_head_));
  }
  PUNICA_RETURN_IF_ERROR(read_vector(ws, "model.norm.weight", H, &m->final_norm_));
  m->layers_.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights& L = m->layers_[static_cast<size_t>(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    PUNICA_RETURN_IF_ERROR(read_vector(ws, p + "input_layernorm.weight", H, &L.input_norm));
    PUNICA_RETURN_IF_ERROR(read_vector(ws, p + "post_attention_layernorm.weight", H, &L.post_attn_norm));
    PUNICA_RETURN_IF_ERROR(read_linear(ws, p + "self_attn.q_proj.weight", Q, H, opt, &L.q));
    PUNICA_RETURN_IF_ERROR(read_linear(ws, p + "self_attn.k_proj.weight", KV, H, opt, &L.k));
    PUNICA_RETURN_IF_ERROR(read_linear(ws, p + "self_attn.v_proj.weight", KV, H, opt, &L.v));
    PUNICA_RETURN_IF_ERROR(read_linear(ws, p + "self_attn.o_proj.weight", H, Q, opt, &L.o));
    PUNICA_RETURN_IF_ERROR(read_linear(ws, p + "mlp.gate_proj.weight", I, H, opt, &L.gate));
    PUNICA_RETURN_IF_ERROR(read_linear(ws, p + "mlp.up_proj.weight", I, H, opt, &L.up));
    PUNICA_RETURN_IF_ERROR(read_linear(ws, p + "mlp.down_proj.weight", H, I, opt, &L.down));
    if (c.attention_bias) {
      PUNICA_RETURN_IF_ERROR(read_vector(ws, p + "self_attn.q_proj.bias", Q, &L.q_bias));
      PUNICA_RETURN_IF_ERROR(read_vector(ws, p + "self_attn.k_proj.bias", KV, &L.k_bias));
      PUNICA_RETURN_IF_ERROR(read_vector(ws, p + "self_attn.v_proj.bias", KV, &L.v_bias));
    }
  }
  return m;
}

Expected<kv::KvCache> LlamaModel::make_kv_cache(int64_t max_tokens, int64_t page_size) const {
  kv::KvCacheConfig kc;
  kc.num_layers = config_.num_hidden_layers;
  kc.kv_dim = config_.kv_dim();
  kc.page_size = page_size;
  kc.num_pages = std::max<int64_t>(1, kv::KvCache::pages_for_tokens(max_tokens, page_size));
  return kv::KvCache::create(kc);
}

int64_t LlamaModel::weight_bytes_per_token() const {
  auto lin = [](const StoredLinear& s) { return s.w.rows * s.w.row_bytes; };
  int64_t total = lin(lm_head_) + embed_.w.row_bytes;
  for (const LayerWeights& L : layers_)
    total += lin(L.q) + lin(L.k) + lin(L.v) + lin(L.o) + lin(L.gate) + lin(L.up) + lin(L.down) +
             static_cast<int64_t>((L.input_norm.size() + L.post_attn_norm.size()) * sizeof(float));
  return total;
}

void LlamaModel::resize_workspace(int64_t T) {
  const ModelConfig& c = config_;
  auto grow = [](std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  };
  grow(x_, T * c.hidden_size);
  grow(h_, T * c.hidden_size);
  grow(tmp_, T * c.hidden_size);
  grow(q_, T * c.q_dim());
  grow(attn_, T * c.q_dim());
  grow(k_, T * c.kv_dim());
  grow(v_, T * c.kv_dim());
  grow(gate_, T * c.intermediate_size);
  grow(up_, T * c.intermediate_size);
}

Status LlamaModel::project(const BatchPlan& plan, int64_t layer, Module module, const float* x, float* y) {
  const LayerWeights& L = layers_[static_cast<size_t>(layer)];
  const StoredLinear* w = nullptr;
  const std::vector<float>* bias = nullptr;
  switch (module) {
    case Module::kQ: w = &L.q; bias = &L.q_bias; break;
    case Module::kK: w = &L.k; bias = &L.k_bias; break;
    case Module::kV: w = &L.v; bias = &L.v_bias; break;
    case Module::kO: w = &L.o; break;
    case Module::kGate: w = &L.gate; break;
    case Module::kUp: w = &L.up; break;
    case Module::kDown: w = &L.down; break;
  }
  ops::LinearParams p;
  p.x = x;
  p.x_stride = w->w.cols;
  p.w = w->w;
  p.bias = bias && !bias->empty() ? bias->data() : nullptr;
  p.y = y;
  p.y_stride = w->w.rows;
  p.num_tokens = plan.num_tokens;
  PUNICA_RETURN_IF_ERROR(backend_.linear(p));
  // LoRA: y += scale * (x @ A^T) @ B^T for the plan's adapter segments (backend_.lora_shrink/expand).
  return Status::ok();
}

Expected<std::vector<float>> LlamaModel::forward(const BatchPlan& plan, kv::KvCache& kv, bool log_probs,
                                                 const LoraBatch* lora) {
  const ModelConfig& c = config_;
  const int64_t T = plan.num_tokens, H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  if (kv.config().num_layers != c.num_hidden_layers || kv.config().kv_dim != KV)
    return invalid_argument("forward: KV cache shape does not match the model");
  const int64_t R = static_cast<int64_t>(plan.logit_rows.size());
  std::vector<float> logits(static_cast<size_t>(R * c.vocab_size));
  if (T == 0) return logits;
  resize_workspace(T);

  ops::EmbeddingParams ep{embed_.w, plan.token_ids.data(), T, x_.data()};
  PUNICA_RETURN_IF_ERROR(backend_.embedding(ep));
  // LoRA add-ons (model/lora_apply.h): fused q|k|v and gate|up shrinks, o/down/lm_head single-slice.
  const bool use_lora = lora && lora->active && lora_adapters_;
  if (use_lora && (lora->rows.num_tokens != T || static_cast<int64_t>(lora->logit_rows.num_tokens) != R))
    return invalid_argument("forward: LoRA segments do not match the batch plan");
  auto add_lora = [&](const LoraSegmentArrays& seg, int64_t layer, std::vector<LoraModule> modules, const float* x,
                      int64_t h_in, std::vector<LoraOutput> outs) -> Status {
    if (!use_lora) return Status::ok();
    return lora_add_projections(backend_, *lora_adapters_, seg, static_cast<int>(layer), modules, x, h_in, h_in, outs,
                                lora_scratch_);
  };
  if (use_lora)
    PUNICA_RETURN_IF_ERROR(lora_add_embedding(backend_, *lora_adapters_, lora->rows, plan.token_ids.data(),
                                              c.vocab_size, x_.data(), H, lora_scratch_));

  const float eps = static_cast<float>(c.rms_norm_eps);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& L = layers_[static_cast<size_t>(l)];
    PUNICA_RETURN_IF_ERROR(backend_.rms_norm({x_.data(), L.input_norm.data(), h_.data(), T, H, eps}));
    PUNICA_RETURN_IF_ERROR(project(plan, l, Module::kQ, h_.data(), q_.data()));
    PUNICA_RETURN_IF_ERROR(project(plan, l, Module::kK, h_.data(), k_.data()));
    PUNICA_RETURN_IF_ERROR(project(plan, l, Module::kV, h_.data(), v_.data()));
    if (use_lora)
      PUNICA_RETURN_IF_ERROR(add_lora(lora->rows, l, {LoraModule::kQ, LoraModule::kK, LoraModule::kV}, h_.data(), H,
                                      {{q_.data(), Q, Q}, {k_.data(), KV, KV}, {v_.data(), KV, KV}}));

    ops::RopeParams rp;
    rp.q = q_.data(); rp.q_stride = Q;
    rp.k = k_.data(); rp.k_stride = KV;
    rp.cos = plan.rope_cos.data(); rp.sin = plan.rope_sin.data();
    rp.num_tokens = T; rp.num_q_heads = c.num_attention_heads; rp.num_kv_heads = c.num_key_value_heads;
    rp.head_dim = c.head_dim;
    PUNICA_RETURN_IF_ERROR(backend_.rope(rp));

    ops::KvAppendParams kp;
    kp.k = k_.data(); kp.k_stride = KV; kp.v = v_.data(); kp.v_stride = KV;
    kp.slots = plan.kv_slots.data(); kp.num_tokens = T; kp.kv_dim = KV;
    kp.k_pool = kv.k_pool(l); kp.v_pool = kv.v_pool(l); kp.pool_slots = kv.pool_slots();
    PUNICA_RETURN_IF_ERROR(backend_.kv_append(kp));

    ops::AttentionParams ap;
    ap.q = q_.data(); ap.q_stride = Q; ap.out = attn_.data(); ap.out_stride = Q;
    ap.k_pool = kv.k_pool(l); ap.v_pool = kv.v_pool(l);
    ap.pool_pages = kv.config().num_pages; ap.page_size = kv.config().page_size;
    ap.num_q_heads = c.num_attention_heads; ap.num_kv_heads = c.num_key_value_heads; ap.head_dim = c.head_dim;
    ap.num_tokens = T; ap.num_requests = plan.num_requests;
    ap.row_start = plan.row_start.data(); ap.positions = plan.positions.data(); ap.kv_len = plan.kv_len.data();
    ap.page_table_start = plan.page_table_start.data(); ap.page_indices = plan.page_indices.data();
    PUNICA_RETURN_IF_ERROR(backend_.attention_paged(ap));

    PUNICA_RETURN_IF_ERROR(project(plan, l, Module::kO, attn_.data(), tmp_.data()));
    if (use_lora) PUNICA_RETURN_IF_ERROR(add_lora(lora->rows, l, {LoraModule::kO}, attn_.data(), Q, {{tmp_.data(), H, H}}));
    PUNICA_RETURN_IF_ERROR(backend_.add({x_.data(), tmp_.data(), T * H}));
    PUNICA_RETURN_IF_ERROR(backend_.rms_norm({x_.data(), L.post_attn_norm.data(), h_.data(), T, H, eps}));
    PUNICA_RETURN_IF_ERROR(project(plan, l, Module::kGate, h_.data(), gate_.data()));
    PUNICA_RETURN_IF_ERROR(project(plan, l, Module::kUp, h_.data(), up_.data()));
    if (use_lora)
      PUNICA_RETURN_IF_ERROR(add_lora(lora->rows, l, {LoraModule::kGate, LoraModule::kUp}, h_.data(), H,
                                      {{gate_.data(), I, I}, {up_.data(), I, I}}));
    PUNICA_RETURN_IF_ERROR(backend_.silu_mul({gate_.data(), up_.data(), gate_.data(), T, I}));
    PUNICA_RETURN_IF_ERROR(project(plan, l, Module::kDown, gate_.data(), tmp_.data()));
    if (use_lora) PUNICA_RETURN_IF_ERROR(add_lora(lora->rows, l, {LoraModule::kDown}, gate_.data(), I, {{tmp_.data(), H, H}}));
    PUNICA_RETURN_IF_ERROR(backend_.add({x_.data(), tmp_.data(), T * H}));
  }
  if (R == 0) return logits;
  // Final norm and lm_head on the wanted rows only.
  PUNICA_RETURN_IF_ERROR(backend_.gather_rows({x_.data(), plan.logit_rows.data(), R, T, H, h_.data()}));
  PUNICA_RETURN_IF_ERROR(backend_.rms_norm({h_.data(), final_norm_.data(), h_.data(), R, H, eps}));
  ops::LinearParams lp;
  lp.x = h_.data(); lp.x_stride = H; lp.w = lm_head_.w; lp.y = logits.data(); lp.y_stride = c.vocab_size;
  lp.num_tokens = R;
  PUNICA_RETURN_IF_ERROR(backend_.linear(lp));
  if (use_lora)
    PUNICA_RETURN_IF_ERROR(add_lora(lora->logit_rows, -1, {LoraModule::kLmHead}, h_.data(), H,
                                    {{logits.data(), c.vocab_size, c.vocab_size}}));
  if (log_probs) PUNICA_RETURN_IF_ERROR(backend_.log_softmax({logits.data(), logits.data(), R, c.vocab_size}));
  return logits;
}

}  // namespace punica::model
