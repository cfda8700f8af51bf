// open_model: a Hugging Face folder or a .gguf file -> ModelConfig + WeightSource, with every tensor the
// config implies checked for presence, exact shape and a readable storage type before the model sees it.
#include <sys/stat.h>

#include <filesystem>

#include "formats/gguf.h"
#include "formats/gguf_dequant.h"
#include "formats/gguf_model.h"
#include "formats/model_files.h"
#include "formats/safetensors.h"

namespace punica {

namespace {

std::string shape_string(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool storage_type_readable(const std::string& t) {
  if (t == "F32" || t == "F16" || t == "BF16" || t == "F64") return true;
  for (uint32_t id = 0; id < 64; ++id)
    if (ggml_type_traits(id) && ggml_type_name(id) == t) return gguf_can_dequantize(id);
  return false;
}

}  // namespace

std::vector<ExpectedTensor> model_expected_tensors(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  std::vector<ExpectedTensor> out = {{"model.embed_tokens.weight", {c.vocab_size, h}}};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out.push_back({p + "input_layernorm.weight", {h}});
    out.push_back({p + "self_attn.q_proj.weight", {q, h}});
    out.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    out.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (c.attention_bias) {
      out.push_back({p + "self_attn.q_proj.bias", {q}});
      out.push_back({p + "self_attn.k_proj.bias", {kv}});
      out.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    out.push_back({p + "self_attn.o_proj.weight", {h, q}});
    out.push_back({p + "post_attention_layernorm.weight", {h}});
    out.push_back({p + "mlp.gate_proj.weight", {f, h}});
    out.push_back({p + "mlp.up_proj.weight", {f, h}});
    out.push_back({p + "mlp.down_proj.weight", {h, f}});
  }
  out.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, h}});
  return out;
}

Status model_validate_weights(const ModelConfig& config, const WeightSource& weights) {
  for (const auto& e : model_expected_tensors(config)) {
    const TensorInfo* t = weights.find(e.name);
    if (!t)
      return invalid_file(weights.path() + ": tensor '" + e.name + "' is missing (expected shape " +
                          shape_string(e.shape) + ")");
    if (t->shape != e.shape)
      return invalid_file(weights.path() + ": tensor '" + e.name + "' has shape " + shape_string(t->shape) +
                          ", expected " + shape_string(e.shape));
    if (!storage_type_readable(t->storage_type))
      return unsupported(weights.path() + ": tensor '" + e.name + "' is stored as " + t->storage_type +
                         ", which this build cannot read (expected F32, F16, BF16 or a supported GGUF quant)");
  }
  return {};
}

Expected<ModelFiles> open_gguf_model(const std::string& path) {
  PUNICA_ASSIGN_OR_RETURN(auto file, GgufFile::open(path));
  if (const GgufValue* t = file->find("general.type");
      t && t->type() == GgufType::kString && t->as_string() == "adapter")
    return invalid_argument(path + ": metadata key 'general.type' is \"adapter\": this is a LoRA adapter, not a "
                                   "model; pass it with --lora NAME=PATH");
  std::shared_ptr<const GgufFile> shared(std::move(file));
  PUNICA_ASSIGN_OR_RETURN(ModelConfig config, gguf_model_config(*shared));
  ModelFiles m;
  m.weights = gguf_weight_source(shared, config);
  m.config = std::move(config);
  PUNICA_RETURN_IF_ERROR(model_validate_weights(m.config, *m.weights));
  return m;
}

Expected<ModelFiles> open_hf_model(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  const std::string config_path = (d / "config.json").string();
  std::error_code ec;
  if (!fs::exists(config_path, ec) && fs::exists(d / "adapter_config.json", ec))
    return invalid_argument(dir + ": holds adapter_config.json, not config.json: this is a PEFT LoRA adapter, not a "
                                  "model; pass it with --lora NAME=PATH");
  PUNICA_ASSIGN_OR_RETURN(std::string text, read_text_file(config_path, 16u << 20));
  PUNICA_ASSIGN_OR_RETURN(ModelConfig config, parse_hf_config(text, config_path));
  std::string weights_path;
  if (fs::exists(d / "model.safetensors.index.json", ec)) {
    weights_path = (d / "model.safetensors.index.json").string();
  } else if (fs::exists(d / "model.safetensors", ec)) {
    weights_path = (d / "model.safetensors").string();
  } else {
    return not_found(dir + ": no model.safetensors or model.safetensors.index.json next to config.json");
  }
  ModelFiles m;
  PUNICA_ASSIGN_OR_RETURN(m.weights, open_safetensors_weights(weights_path));
  m.config = std::move(config);
  PUNICA_RETURN_IF_ERROR(model_validate_weights(m.config, *m.weights));
  return m;
}

Expected<ModelFiles> open_model(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return not_found(path + ": no such file or folder");
  if (S_ISDIR(st.st_mode)) return open_hf_model(path);
  // A single safetensors/json file is a common mistake: the GGUF magic error alone would not say what to pass.
  const std::string name = std::filesystem::path(path).filename().string();
  for (const char* ext : {".safetensors", ".json"}) {
    const std::string e(ext);
    if (name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0)
      return invalid_argument(path + ": a model is a Hugging Face folder (config.json + model.safetensors or "
                                     "model.safetensors.index.json) or a .gguf file; pass the folder");
  }
  return open_gguf_model(path);   // its magic check says clearly when the file is something else
}

}  // namespace punica
