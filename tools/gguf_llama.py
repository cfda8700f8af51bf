"""GGUF pieces shared by the fixture generators (gen_format_fixtures.py, gen_lora_fixtures.py)."""


def llama_permute(w, n_head):
    # convert_hf_to_gguf.py LlamaModel.permute: the q/k row order llama.cpp stores (also applied by
    # convert_lora_to_gguf.py to lora_b of q/k). Works on numpy arrays and torch tensors.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def add_llama_hparams(w, cfg, rope_theta, bos_id, eos_id):
    """The hyper-parameters of a llama-family GGUF from an HF config dict, with a byte-level vocabulary of
    placeholder tokens tok0..tok{V-1}."""
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rope_theta)
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_bos_token_id(bos_id)
    w.add_eos_token_id(eos_id)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(cfg["vocab_size"])])
