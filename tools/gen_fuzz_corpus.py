#!/usr/bin/env python3
"""Writes the small seed corpora of fuzz/corpus/<parser>/ (run by hand once; outputs are committed).

  /opt/punica-tools/venv/bin/python tools/gen_fuzz_corpus.py

gguf/: tiny llama and qwen2 GGUFs (1 layer, F32/F16/Q4_0/Q4_1/Q8_0/Q4_K tensors) written by gguf.GGUFWriter,
       plus truncated and corrupted copies. safetensors/: small files written by safetensors.numpy, plus
       corrupted copies. hf_config/: config.json variants (classic and rope_parameters forms), plus broken ones.
"""
import json
import os

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize
from safetensors.numpy import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
rng = np.random.default_rng(7)


def write(sub, name, data):
    d = os.path.join(CORPUS, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tiny_gguf(arch, path):
    h, inter, v, nh, nkv = 32, 256, 32, 4, 2
    hd = h // nh
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(h)
    w.add_feed_forward_length(inter)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_token_list([f"t{i}" for i in range(v)])
    w.add_array("x.nested", [[1, 2], [3]])
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    w.add_tensor("token_embd.weight", quantize(f32(v, h), T.Q8_0), raw_dtype=T.Q8_0)
    w.add_tensor("output_norm.weight", f32(h))
    w.add_tensor("blk.0.attn_norm.weight", f32(h))
    w.add_tensor("blk.0.ffn_norm.weight", f32(h))
    w.add_tensor("blk.0.attn_q.weight", quantize(f32(nh * hd, h), T.Q4_0), raw_dtype=T.Q4_0)
    w.add_tensor("blk.0.attn_k.weight", f32(nkv * hd, h).astype(np.float16))
    w.add_tensor("blk.0.attn_v.weight", f32(nkv * hd, h))
    if arch == "qwen2":
        w.add_tensor("blk.0.attn_q.bias", f32(nh * hd))
        w.add_tensor("blk.0.attn_k.bias", f32(nkv * hd))
        w.add_tensor("blk.0.attn_v.bias", f32(nkv * hd))
    w.add_tensor("blk.0.attn_output.weight", f32(h, nh * hd))
    # K-quant rows need 256 elements: the MLP is 256 wide on the input side of down.
    w.add_tensor("blk.0.ffn_gate.weight", quantize(f32(inter, h), T.Q8_0), raw_dtype=T.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", quantize(f32(inter, h), T.Q4_1), raw_dtype=T.Q4_1)
    raw_q4k = rng.integers(0, 256, size=(h, 144), dtype=np.uint8)
    raw_q4k[:, 0:4] = np.array([0.01, 0.01], dtype=np.float16).view(np.uint8)
    w.add_tensor("blk.0.ffn_down.weight", raw_q4k, raw_dtype=T.Q4_K)
    if arch == "llama":
        w.add_tensor("output.weight", f32(v, h).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gen_gguf():
    tmp = os.path.join(CORPUS, "gguf")
    os.makedirs(tmp, exist_ok=True)
    for arch in ("llama", "qwen2"):
        p = os.path.join(tmp, f"tiny_{arch}.gguf")
        tiny_gguf(arch, p)
        data = open(p, "rb").read()
        write("gguf", f"tiny_{arch}_truncated_header", data[:200])
        write("gguf", f"tiny_{arch}_truncated_data", data[:-7])
        bad = bytearray(data)
        bad[8:16] = (1 << 40).to_bytes(8, "little")   # absurd tensor count
        write("gguf", f"tiny_{arch}_bad_count", bytes(bad))
    write("gguf", "empty", b"")
    write("gguf", "magic_only", b"GGUF\x03\x00\x00\x00")


def gen_safetensors():
    t = {"a": rng.standard_normal((4, 8)).astype(np.float32),
         "b": rng.standard_normal(16).astype(np.float16),
         "c": np.zeros((0, 3), dtype=np.float32)}
    data = save(t, metadata={"format": "pt"})
    write("safetensors", "small", data)
    write("safetensors", "small_truncated", data[:-5])
    bf = (rng.standard_normal(8).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    hdr = json.dumps({"w": {"dtype": "BF16", "shape": [2, 4], "data_offsets": [0, 16]}}).encode()
    write("safetensors", "bf16", len(hdr).to_bytes(8, "little") + hdr + bf.tobytes())
    hdr = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
    write("safetensors", "overlap", len(hdr).to_bytes(8, "little") + hdr + bytes(12))
    write("safetensors", "huge_header", (1 << 62).to_bytes(8, "little") + b"{}")


def gen_hf_config():
    base = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 512, "bos_token_id": 1, "eos_token_id": [2, 3]}
    write("hf_config", "llama_classic", json.dumps(dict(base, rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 128})).encode())
    write("hf_config", "llama_rope_parameters", json.dumps(dict(base, rope_parameters={
        "rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})).encode())
    write("hf_config", "qwen2_nested", json.dumps(dict(base, model_type="qwen2", tie_word_embeddings=True,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6}})).encode())
    write("hf_config", "mistral_head_dim", json.dumps(dict(base, model_type="mistral", head_dim=32,
        rope_scaling=None, eos_token_id=2)).encode())
    write("hf_config", "broken", b'{"model_type": "llama", "hidden_size": ')
    write("hf_config", "bad_heads", json.dumps(dict(base, num_key_value_heads=3)).encode())


if __name__ == "__main__":
    gen_gguf()
    gen_safetensors()
    gen_hf_config()
    for p in ("gguf/tiny_llama.gguf", "gguf/tiny_qwen2.gguf"):
        os.rename(os.path.join(CORPUS, p), os.path.join(CORPUS, p[:-5]))
    print("wrote", CORPUS)
