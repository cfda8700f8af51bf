// `punica info --model PATH`: what a model file holds, as the runtime will see it: the config, then every
// tensor under its HF name with its shape (HF order) and how the file stores it.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cli/commands/commands.h"
#include "formats/weight_source.h"

namespace punica::cli {

namespace {

const char* rope_scaling_name(RopeScalingType t) {
  switch (t) {
    case RopeScalingType::kNone: return "none";
    case RopeScalingType::kLinear: return "linear";
    case RopeScalingType::kDynamic: return "dynamic";
    case RopeScalingType::kLlama3: return "llama3";
  }
  return "?";
}

void print_config(const ModelConfig& c) {
  std::printf("architecture             %s\n", c.architecture.c_str());
  std::printf("vocab_size               %lld\n", static_cast<long long>(c.vocab_size));
  std::printf("hidden_size              %lld\n", static_cast<long long>(c.hidden_size));
  std::printf("intermediate_size        %lld\n", static_cast<long long>(c.intermediate_size));
  std::printf("num_hidden_layers        %lld\n", static_cast<long long>(c.num_hidden_layers));
  std::printf("num_attention_heads      %lld\n", static_cast<long long>(c.num_attention_heads));
  std::printf("num_key_value_heads      %lld\n", static_cast<long long>(c.num_key_value_heads));
  std::printf("head_dim                 %lld\n", static_cast<long long>(c.head_dim));
  std::printf("max_position_embeddings  %lld\n", static_cast<long long>(c.max_position_embeddings));
  std::printf("rms_norm_eps             %g\n", c.rms_norm_eps);
  std::printf("rope_theta               %g\n", c.rope_theta);
  std::printf("rope_scaling             %s", rope_scaling_name(c.rope_scaling.type));
  if (c.rope_scaling.type != RopeScalingType::kNone) std::printf(" factor=%g", c.rope_scaling.factor);
  if (c.rope_scaling.type == RopeScalingType::kLlama3)
    std::printf(" low_freq_factor=%g high_freq_factor=%g", c.rope_scaling.low_freq_factor,
                c.rope_scaling.high_freq_factor);
  if (c.rope_scaling.original_max_position_embeddings)
    std::printf(" original_max_position_embeddings=%lld",
                static_cast<long long>(c.rope_scaling.original_max_position_embeddings));
  std::printf("\n");
  if (!c.rope_freq_factors.empty()) std::printf("rope_freq_factors        %zu values\n", c.rope_freq_factors.size());
  std::printf("tie_word_embeddings      %s\n", c.tie_word_embeddings ? "true" : "false");
  std::printf("attention_bias           %s\n", c.attention_bias ? "true" : "false");
  std::printf("bos_token_id             %s\n", c.bos_token_id ? std::to_string(*c.bos_token_id).c_str() : "none");
  std::string eos;
  for (int64_t id : c.eos_token_ids) eos += (eos.empty() ? "" : ", ") + std::to_string(id);
  std::printf("eos_token_ids            [%s]\n", eos.c_str());
}

void run_info(const std::string& path) {
  auto m = open_model(path);
  if (!m) {
    std::fprintf(stderr, "punica info: %s\n", m.status().to_string().c_str());
    throw CLI::RuntimeError(1);
  }
  std::printf("model                    %s\n", m->weights->path().c_str());
  print_config(m->config);
  const auto names = m->weights->tensor_names();
  int64_t params = 0;
  std::printf("\n%zu tensors (HF name, shape, storage type):\n", names.size());
  for (const auto& name : names) {
    const TensorInfo* t = m->weights->find(name);
    std::string shape;
    for (int64_t d : t->shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    std::printf("  %-52s [%s] %s\n", name.c_str(), shape.c_str(), t->storage_type.c_str());
    params += t->numel();
  }
  std::printf("parameters               %lld\n", static_cast<long long>(params));
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print a model's config and tensors (HF folder or .gguf file)");
  auto path = std::make_shared<std::string>();
  cmd->add_option("--model", *path, "Hugging Face model folder or .gguf file")->required();
  cmd->callback([path] { run_info(*path); });
}

}  // namespace punica::cli
