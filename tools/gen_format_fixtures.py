#!/usr/bin/env python3
"""Generates the small fixtures of tests/formats/ (run by hand once; outputs are committed).

  /opt/punica-tools/venv/bin/python tools/gen_format_fixtures.py

Writes tests/fixtures/formats/:
  dequant/<TYPE>.bin + <TYPE>.f32   raw ggml blocks and what gguf-py's quants.dequantize makes of them
                                    (random block bytes with finite scales, plus quantize() output where
                                    gguf-py can quantize). Q8_K: gguf-py has no Q8_K, expected = d * qs.
  tiny_llama.gguf + tiny_llama_expected.safetensors
                                    a 2-layer llama GGUF written with gguf.GGUFWriter whose q/k rows are
                                    permuted like llama.cpp's convert_hf_to_gguf.py; expected = the HF
                                    tensors transformers' GGUF loader (LlamaTensorProcessor) recovers.
  tiny_qwen2.gguf + tiny_qwen2_expected.safetensors   same for qwen2 (biases, tied, no permutation)
  hf_llama/      config.json (+ llama3 rope) and model.safetensors (f32), written by transformers
  hf_qwen2_sharded/  config.json, model-0000x-of-0000y.safetensors (bf16) + index, written by transformers
"""
import json
import os
import shutil
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

from gguf_llama import add_llama_hparams, llama_permute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "formats")
rng = np.random.default_rng(1234)

# Byte offsets of f16 scale fields in each block (set to finite values so the expected output is finite).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
QUANTIZABLE = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16}


def random_blocks(qtype, n_blocks):
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    for off in F16_FIELDS.get(qtype, []):
        scale = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw


def gen_dequant():
    d = os.path.join(OUT, "dequant")
    os.makedirs(d, exist_ok=True)
    for qtype in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        bs, ts = gguf.GGML_QUANT_SIZES[qtype]
        n_blocks = 8 if bs == 256 else 32
        raw = random_blocks(qtype, n_blocks)
        parts = [raw.reshape(-1)]
        if qtype in QUANTIZABLE:
            x = rng.standard_normal(bs * n_blocks).astype(np.float32)
            parts.append(quantize(x, qtype).reshape(-1))
        data = np.concatenate(parts)
        expected = dequantize(data, qtype).astype(np.float32).reshape(-1)
        data.tofile(os.path.join(d, qtype.name + ".bin"))
        expected.tofile(os.path.join(d, qtype.name + ".f32"))
    # F16 / BF16: every bit pattern class (normals, subnormals, inf, nan excluded).
    f = rng.standard_normal(512).astype(np.float32) * np.float32(10.0) ** rng.integers(-8, 4, 512)
    f16 = f.astype(np.float16)
    f16.view(np.uint8).tofile(os.path.join(d, "F16.bin"))
    f16.astype(np.float32).tofile(os.path.join(d, "F16.f32"))
    bf = quantize(f, T.BF16)
    bf.tofile(os.path.join(d, "BF16.bin"))
    dequantize(bf, T.BF16).astype(np.float32).tofile(os.path.join(d, "BF16.f32"))
    # Q8_K: float d, int8 qs[256], int16 bsums[16]; gguf-py has no codec, so expected = d * qs.
    n_blocks = 4
    blocks = bytearray()
    exp = []
    for _ in range(n_blocks):
        dd = np.float32(rng.standard_normal() * 0.01)
        qs = rng.integers(-127, 128, 256).astype(np.int8)
        bsums = qs.reshape(16, 16).astype(np.int16).sum(axis=1).astype(np.int16)
        blocks += dd.tobytes() + qs.tobytes() + bsums.tobytes()
        exp.append(dd * qs.astype(np.float32))
    open(os.path.join(d, "Q8_K.bin"), "wb").write(bytes(blocks))
    np.concatenate(exp).astype(np.float32).tofile(os.path.join(d, "Q8_K.f32"))


def tiny_hf_tensors(cfg, with_bias, tied):
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = h // nh
    t = {"model.embed_tokens.weight": rng.standard_normal((v, h)),
         "model.norm.weight": 1 + 0.1 * rng.standard_normal(h)}
    if not tied:
        t["lm_head.weight"] = rng.standard_normal((v, h))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = rng.standard_normal((nh * hd, h))
        t[p + "self_attn.k_proj.weight"] = rng.standard_normal((nkv * hd, h))
        t[p + "self_attn.v_proj.weight"] = rng.standard_normal((nkv * hd, h))
        t[p + "self_attn.o_proj.weight"] = rng.standard_normal((h, nh * hd))
        if with_bias:
            for n, d in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
                t[p + f"self_attn.{n}_proj.bias"] = rng.standard_normal(d)
        t[p + "mlp.gate_proj.weight"] = rng.standard_normal((inter, h))
        t[p + "mlp.up_proj.weight"] = rng.standard_normal((inter, h))
        t[p + "mlp.down_proj.weight"] = rng.standard_normal((h, inter))
        t[p + "input_layernorm.weight"] = 1 + 0.1 * rng.standard_normal(h)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.standard_normal(h)
    return {k: (0.1 * x).astype(np.float32) for k, x in t.items()}


GGUF_NAMES = [("model.embed_tokens.weight", "token_embd.weight"), ("model.norm.weight", "output_norm.weight"),
              ("lm_head.weight", "output.weight")]
LAYER_NAMES = [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
               ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
               ("mlp.down_proj", "ffn_down"), ("input_layernorm", "attn_norm"),
               ("post_attention_layernorm", "ffn_norm")]


def hf_to_gguf_name(name):
    for hf, gg in GGUF_NAMES:
        if name == hf:
            return gg
    parts = name.split(".")
    layer = parts[2]
    rest = ".".join(parts[3:-1])
    for hf, gg in LAYER_NAMES:
        if rest == hf:
            return f"blk.{layer}.{gg}.{parts[-1]}"
    raise KeyError(name)


def write_tiny_gguf(arch, cfg, with_bias, tied, qtypes):
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor
    hf = tiny_hf_tensors(cfg, with_bias, tied)
    path = os.path.join(OUT, f"tiny_{arch}.gguf")
    w = gguf.GGUFWriter(path, arch)
    add_llama_hparams(w, cfg, cfg["rope_theta"], bos_id=1, eos_id=2)
    proc = LlamaTensorProcessor(config=cfg)
    expected = {}
    for name, x in hf.items():
        gname = hf_to_gguf_name(name)
        stored = x
        if arch == "llama" and gname.endswith("attn_q.weight"):
            stored = llama_permute(x, cfg["num_attention_heads"])
        elif arch == "llama" and gname.endswith("attn_k.weight"):
            stored = llama_permute(x, cfg["num_key_value_heads"])
        qtype = T.F32 if x.ndim == 1 else qtypes.get(gname.split(".")[-2], T.F16)
        if qtype == T.F32:
            data = stored
        elif qtype == T.F16:
            data = stored.astype(np.float16)
        else:
            data = quantize(stored, qtype)
        w.add_tensor(gname, data, raw_dtype=qtype if qtype not in (T.F32, T.F16) else None)
        # What a reader must produce: the stored values dequantised by gguf-py, then un-permuted by
        # transformers' GGUF loader.
        deq = dequantize(np.asarray(data).view(np.uint8) if qtype not in (T.F32, T.F16) else np.asarray(data),
                         qtype).astype(np.float32).reshape(x.shape)
        if arch == "llama":
            deq = proc.process(deq, gname).weights
        expected[name] = np.ascontiguousarray(deq)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(expected, os.path.join(OUT, f"tiny_{arch}_expected.safetensors"))


def gen_gguf():
    base = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=256, max_position_embeddings=512, rms_norm_eps=1e-5,
                rope_theta=10000.0)
    write_tiny_gguf("llama", base, with_bias=False, tied=False,
                    qtypes={"attn_q": T.Q8_0, "attn_k": T.Q4_1, "ffn_down": T.Q4_0, "token_embd": T.Q8_0})
    write_tiny_gguf("qwen2", dict(base, rope_theta=1000000.0, rms_norm_eps=1e-6), with_bias=True, tied=True,
                    qtypes={"attn_q": T.Q5_0, "ffn_up": T.Q5_1})


def gen_hf():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(0)
    d = os.path.join(OUT, "hf_llama")
    shutil.rmtree(d, ignore_errors=True)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=64, max_position_embeddings=128, head_dim=16,
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                      rope_theta=500000.0, eos_token_id=[2, 3], tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(d, safe_serialization=True)
    d = os.path.join(OUT, "hf_qwen2_sharded")
    shutil.rmtree(d, ignore_errors=True)
    cfg = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=64, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=5, eos_token_id=6)
    Qwen2ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(d, safe_serialization=True, max_shard_size="20KB")
    for sub in ("hf_llama", "hf_qwen2_sharded"):
        gen_cfg = os.path.join(OUT, sub, "generation_config.json")
        if os.path.exists(gen_cfg):
            os.remove(gen_cfg)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    what = sys.argv[1:] or ["dequant", "gguf", "hf"]
    if "dequant" in what:
        gen_dequant()
    if "gguf" in what:
        gen_gguf()
    if "hf" in what:
        gen_hf()
    print("wrote", OUT)
