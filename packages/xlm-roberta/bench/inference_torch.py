"""PyTorch side of inference.bench.ts: the same XLM-RoBERTa math (transformers' modeling_xlm_roberta.py, eval
mode), written out in plain torch because transformers is not installed here, on the weights of a saved folder.

usage: python3 inference_torch.py SPEC.json   (SPEC: {"folder", "kind": "reranker"|"embedder", "ids": [[...]],
"batch_size", "repeats"}); prints one JSON line {"items_per_s", "threads", "outputs"}.
"""
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    return {k: torch.from_numpy(np.frombuffer(data, np.float32, int(np.prod(v["shape"])), base + v["data_offsets"][0]).reshape(v["shape"]).copy()) for k, v in header.items()}


def forward(w, cfg, ids, kind):
    p = "roberta." if kind == "reranker" else ""
    pad, eps, heads = cfg["pad_token_id"], cfg["layer_norm_eps"], cfg["num_attention_heads"]
    mask = (ids != pad).long()
    pos = torch.cumsum(mask, 1) * mask + pad
    am = (ids != pad).float()
    ext = (1.0 - am[:, None, None, :]) * torch.finfo(torch.float32).min
    h = w[p + "embeddings.word_embeddings.weight"][ids] + w[p + "embeddings.token_type_embeddings.weight"][0] + w[p + "embeddings.position_embeddings.weight"][pos]
    h = F.layer_norm(h, h.shape[-1:], w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"], eps)
    B, S, H = h.shape
    d = H // heads
    for i in range(cfg["num_hidden_layers"]):
        L = f"{p}encoder.layer.{i}."
        lin = lambda x, n: F.linear(x, w[L + n + ".weight"], w[L + n + ".bias"])
        split = lambda x: x.view(B, S, heads, d).permute(0, 2, 1, 3)
        q, k, v = split(lin(h, "attention.self.query")), split(lin(h, "attention.self.key")), split(lin(h, "attention.self.value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + ext, -1)
        ctx = (probs @ v).permute(0, 2, 1, 3).reshape(B, S, H)
        a = F.layer_norm(lin(ctx, "attention.output.dense") + h, (H,), w[L + "attention.output.LayerNorm.weight"], w[L + "attention.output.LayerNorm.bias"], eps)
        h = F.layer_norm(lin(F.gelu(lin(a, "intermediate.dense")), "output.dense") + a, (H,), w[L + "output.LayerNorm.weight"], w[L + "output.LayerNorm.bias"], eps)
    if kind == "reranker":
        x = torch.tanh(F.linear(h[:, 0], w["classifier.dense.weight"], w["classifier.dense.bias"]))
        return F.linear(x, w["classifier.out_proj.weight"], w["classifier.out_proj.bias"])[:, 0]
    return F.normalize(h[:, 0], dim=-1)


def main():
    spec = json.load(open(sys.argv[1]))
    cfg = json.load(open(spec["folder"] + "/config.json"))
    w = read_safetensors(spec["folder"] + "/model.safetensors")
    ids = torch.tensor(spec["ids"], dtype=torch.long)
    bs = spec["batch_size"]
    with torch.no_grad():
        outputs = torch.cat([forward(w, cfg, ids[i : i + bs], spec["kind"]) for i in range(0, len(ids), bs)])
        start = time.perf_counter()
        for _ in range(spec["repeats"]):
            for i in range(0, len(ids), bs):
                forward(w, cfg, ids[i : i + bs], spec["kind"])
        seconds = time.perf_counter() - start
    print(json.dumps({"items_per_s": spec["repeats"] * len(ids) / seconds, "threads": torch.get_num_threads(), "outputs": outputs.flatten().tolist()}))


if __name__ == "__main__":
    main()
