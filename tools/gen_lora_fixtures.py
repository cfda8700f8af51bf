#!/usr/bin/env python3
"""Generates the LoRA fixtures under tests/fixtures/lora/ (run by hand once; tests never run Python).

For each tiny random base model (llama with GQA; qwen2 with q/k/v bias and tied embeddings) it writes
  <model>/base/{config.json, model.safetensors}                 the base model (f32)
  <model>/adapters/<name>/{adapter_config.json, adapter_model.safetensors}   PEFT save_pretrained output
  <model>/expected.json   a mixed batch (every adapter + base-only rows, different lengths) with PEFT's
                          float64 log-probabilities of every token and float64 greedy continuations
  llama_gqa/gguf/<name>.gguf  one adapter converted the way llama.cpp's convert_lora_to_gguf.py does it
                          (llama.cpp names, q/k lora_b rows permuted, token_embd.lora_a transposed)
  llama_gqa/gguf/base.gguf    the same base model as an F32 GGUF (llama.cpp names, q/k rows permuted like
                          convert_hf_to_gguf.py), so a GGUF adapter can be run on a GGUF base end to end
                          against the PEFT references of expected.json (--gguf-base writes only this file,
                          from the existing base/model.safetensors)

PEFT initialises lora_B to zero; every lora weight is overwritten with random values large enough to change
the logits visibly. Usage: /opt/punica-tools/venv/bin/python tools/gen_lora_fixtures.py
"""
import copy
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from gguf_llama import add_llama_hparams, llama_permute

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "lora")
GREEDY_NEW_TOKENS = 6
VOCAB = 128


def model_configs():
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1, eos_token_id=2)
    llama = LlamaConfig(**common, tie_word_embeddings=False, attention_bias=False)
    qwen2 = Qwen2Config(**common, tie_word_embeddings=True)
    return {"llama_gqa": (LlamaForCausalLM, llama), "qwen2_tied": (Qwen2ForCausalLM, qwen2)}


# name -> LoraConfig kwargs. Together they cover: ranks 2..16, q/k/v/o/gate/up/down, embed_tokens, lm_head,
# rank_pattern/alpha_pattern (plain suffix and layer-qualified keys), rsLoRA, a regex target_modules,
# layers_to_transform (+ layers_pattern), fan_in_fan_out (no effect on nn.Linear: PEFT resets it).
ADAPTERS = {
    # lm_head stays adapted despite layers_to_transform: PEFT checks layers only for suffix matches, and
    # "lm_head" is an exact key match.
    "qv_r8": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "lm_head"], layers_to_transform=[1],
                  layers_pattern="layers"),
    "all7_patterns": dict(r=4, lora_alpha=8,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                          rank_pattern={"down_proj": 2, "layers.1.self_attn.k_proj": 6},
                          alpha_pattern={"o_proj": 3, r"model\.layers\.0\.mlp\.up_proj": 20}),
    "rslora_regex": dict(r=16, lora_alpha=4, use_rslora=True,
                         target_modules=r".*\.layers\.\d+\.(self_attn\.(q|k|o)_proj|mlp\.(gate|up)_proj)"),
    "embed_head": dict(r=6, lora_alpha=12, target_modules=["embed_tokens", "lm_head", "up_proj", "v_proj"]),
    "down_l1_fifo": dict(r=3, lora_alpha=5, target_modules=["down_proj", "o_proj"], layers_to_transform=1,
                         fan_in_fan_out=False),
}


def randomise_lora(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                # A ~ N(0, 0.3), B ~ N(0, 0.3): the add-on changes log-probs by O(0.1..1).
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) * 0.3)


def make_base(cls, cfg, seed):
    torch.manual_seed(seed)
    model = cls(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                # Larger than HF's 0.02 so the logits are decisive (greedy has clear winners).
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))
    model.eval()
    return model


def requests_for(adapter_names, gen):
    # Every adapter, two base-only rows, one adapter twice (not adjacent), lengths 1..13.
    rows = []
    names = list(adapter_names)
    lengths = [5, 9, 1, 13, 7, 3, 11, 4]
    order = [names[0], None, names[1], names[2], names[3], None, names[4 % len(names)], names[0]]
    for i, ad in enumerate(order):
        n = lengths[i % len(lengths)]
        toks = torch.randint(3, VOCAB, (n,), generator=gen).tolist()
        rows.append({"adapter": ad, "tokens": toks})
    return rows


@torch.no_grad()
def logprobs_and_greedy(model, tokens):
    ids = torch.tensor([tokens])
    logits = model(input_ids=ids).logits[0].double()
    lp = torch.log_softmax(logits, dim=-1)
    # logprob of tokens[i] given tokens[:i], for i >= 1
    token_lp = [lp[i - 1, tokens[i]].item() for i in range(1, len(tokens))]
    seq = list(tokens)
    out, margins = [], []
    for _ in range(GREEDY_NEW_TOKENS):
        lg = model(input_ids=torch.tensor([seq])).logits[0, -1].double()
        top2 = torch.topk(lg, 2).values
        margins.append((top2[0] - top2[1]).item())
        nxt = int(torch.argmax(lg).item())
        out.append(nxt)
        seq.append(nxt)
    return token_lp, out, min(margins)


def save_base(model, cfg, folder):
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(folder, extra)
        if os.path.exists(p):
            os.remove(p)


def write_gguf_adapter(adapter_dir, cfg, out_path):
    import gguf
    from safetensors.torch import load_file
    lp = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    sd = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    w = gguf.GGUFWriter(out_path, "llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lp["lora_alpha"]))
    for key in sorted(sd):
        if ".lora_A." not in key and "lora_embedding_A" not in key:
            continue
        a = sd[key].float()
        b = sd[key.replace("lora_A", "lora_B").replace("lora_embedding_A", "lora_embedding_B")].float()
        base = key.replace("base_model.model.", "")
        if "embed_tokens" in base:
            dest, a = "token_embd.weight", a.T.contiguous()
        elif base.startswith("lm_head"):
            dest = "output.weight"
        else:
            parts = base.split(".")  # model.layers.N.<sub>.<proj>.lora_A.weight
            dest = f"blk.{parts[2]}.{names[parts[3] + '.' + parts[4]]}.weight"
            if parts[4] == "q_proj":
                b = llama_permute(b, cfg.num_attention_heads)
            elif parts[4] == "k_proj":
                b = llama_permute(b, cfg.num_key_value_heads)
        w.add_tensor(dest + ".lora_a", a.numpy().astype(np.float32))
        w.add_tensor(dest + ".lora_b", b.numpy().astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


GGUF_BASE_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                   "lm_head.weight": "output.weight"}
GGUF_LAYER_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
                    "post_attention_layernorm": "ffn_norm"}


def write_gguf_base(base_dir, out_path):
    import gguf
    from safetensors.torch import load_file
    cfg = json.load(open(os.path.join(base_dir, "config.json")))
    sd = load_file(os.path.join(base_dir, "model.safetensors"))
    w = gguf.GGUFWriter(out_path, "llama")
    rope_theta = cfg["rope_parameters"]["rope_theta"] if "rope_parameters" in cfg else cfg["rope_theta"]
    add_llama_hparams(w, cfg, rope_theta, bos_id=cfg["bos_token_id"], eos_id=cfg["eos_token_id"])
    for name in sorted(sd):
        x = sd[name].float()
        if name in GGUF_BASE_NAMES:
            dest = GGUF_BASE_NAMES[name]
        else:
            parts = name.split(".")  # model.layers.N.<sub...>.weight
            dest = f"blk.{parts[2]}.{GGUF_LAYER_NAMES['.'.join(parts[3:-1])]}.weight"
            if parts[4] == "q_proj":
                x = llama_permute(x, cfg["num_attention_heads"])
            elif parts[4] == "k_proj":
                x = llama_permute(x, cfg["num_key_value_heads"])
        w.add_tensor(dest, x.numpy().astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if "--gguf-base" in sys.argv:
        write_gguf_base(os.path.join(OUT, "llama_gqa", "base"), os.path.join(OUT, "llama_gqa", "gguf", "base.gguf"))
        return
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for mi, (mname, (cls, cfg)) in enumerate(model_configs().items()):
        root = os.path.join(OUT, mname)
        base = make_base(cls, cfg, seed=100 + mi)
        save_base(base, cfg, os.path.join(root, "base"))
        gen = torch.Generator().manual_seed(7 + mi)
        peft_modules = {}
        for ai, (aname, kw) in enumerate(ADAPTERS.items()):
            pm = get_peft_model(copy.deepcopy(base), LoraConfig(**kw))
            # What PEFT itself decided per module (rank after rank_pattern, scaling after alpha_pattern/rsLoRA).
            peft_modules[aname] = {
                name.replace("base_model.model.", ""): {"r": mod.r["default"], "scaling": mod.scaling["default"]}
                for name, mod in pm.named_modules() if hasattr(mod, "r") and isinstance(mod.r, dict) and "default" in mod.r}
            randomise_lora(pm, torch.Generator().manual_seed(1000 * (mi + 1) + ai))
            pm.save_pretrained(os.path.join(root, "adapters", aname), save_embedding_layers=False)
            os.remove(os.path.join(root, "adapters", aname, "README.md"))  # generated model card
        rows = requests_for(ADAPTERS.keys(), gen)
        base64 = copy.deepcopy(base).double()
        min_margin = math.inf
        for row in rows:
            if row["adapter"] is None:
                model = base64
            else:
                model = PeftModel.from_pretrained(copy.deepcopy(base), os.path.join(root, "adapters", row["adapter"]))
                model = model.double().eval()
            row["logprobs"], row["greedy"], margin = logprobs_and_greedy(model, row["tokens"])
            min_margin = min(min_margin, margin)
        if min_margin < 2e-3:  # f32 logits are within ~1e-4 of f64 on these sizes
            sys.exit(f"{mname}: greedy top-2 logit margin {min_margin} too small; change seeds")
        expected = {"model": mname, "greedy_new_tokens": GREEDY_NEW_TOKENS, "peft_modules": peft_modules,
                    "min_greedy_margin": min_margin, "requests": rows}
        with open(os.path.join(root, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1)
        # Mixed-batch input for `punica score` (one JSON object per line).
        seen = []
        with open(os.path.join(root, "score_input.jsonl"), "w") as f:
            for row in rows:
                f.write(json.dumps({"id": str(len(seen)), "adapter": row["adapter"], "tokens": row["tokens"]}) + "\n")
                seen.append(row)
        if mname == "llama_gqa":
            os.makedirs(os.path.join(root, "gguf"), exist_ok=True)
            for aname in ("all7_patterns", "embed_head"):
                write_gguf_adapter(os.path.join(root, "adapters", aname), cfg,
                                   os.path.join(root, "gguf", aname + ".gguf"))
            write_gguf_base(os.path.join(root, "base"), os.path.join(root, "gguf", "base.gguf"))
        print(f"{mname}: {len(rows)} requests, min greedy margin {min_margin:.4f}")


if __name__ == "__main__":
    main()
