"""PyTorch yardstick of `pnpm bench` (side-by-side.bench.ts): the same XLM-RoBERTa math as Hugging Face's
modeling_xlm_roberta.py (post-LN encoder, erf GELU, RoBERTa position ids, dropout in training) written in plain
torch, so that it runs on any torch from 1.13 (Debian's) to the newest (`pnpm bench scale` makes a venv with torch
from the machine's local wheel mirror).

usage: python3 torch_xlmr.py SPEC.json
SPEC: {"threads": int, "workloads": [{"name", "task": "score" | "encode" | "train-reranker" | "train-embedder",
       "model": folder written by kotune (config.json + model.safetensors), "forwards": [{"inputIds", "attentionMask"}],
       "warmup": int, "steps": int, "group_size"?, "scale"?, "learning_rate"?, "weight_decay"?, "max_grad_norm"?,
       "mini_batch_size"?}]}
A step is one forward of each entry of `forwards` (inference, no_grad), or for training the loss over them,
backward, clipping and an AdamW step: the reranker's group cross-entropy (FlagEmbedding: logits viewed
[-1, group_size], target 0) and the embedder's MNRL (sentence-transformers: cos_sim(queries, positives) * scale,
target arange; with `mini_batch_size`, through GradCache as sentence-transformers' CachedMultipleNegativesRankingLoss
does it: embed every mini-batch without a graph, the loss and its gradient on the embeddings, then each mini-batch again
with the same RNG state and backward of <its gradient, its embeddings>). Prints one JSON line: {"torch", "threads",
"peak_rss_mb", "results": {name: {"seconds_per_step", "optimizer_seconds" (training: clipping + AdamW step alone, per
step), "tokens", "items", "outputs" (inference: the first step's scores / embeddings)}}}.
"""
import gc
import json
import math
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    """Tensor by tensor (the whole file in memory at once would add its size to the peak RSS)."""
    out = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        base = 8 + n
        for name, entry in header.items():
            assert entry["dtype"] == "F32", f"{name}: {entry['dtype']}"
            begin, end = entry["data_offsets"]
            f.seek(base + begin)
            out[name] = torch.from_numpy(np.frombuffer(f.read(end - begin), np.float32).reshape(entry["shape"]).copy())
    return out


class XLMRoberta(torch.nn.Module):
    """XLMRobertaForSequenceClassification (head "classifier") or XLMRobertaModel + CLS pooling + normalise."""

    def __init__(self, cfg, state):
        super().__init__()
        self.cfg = cfg
        self.head = "classifier" if any(k.startswith("classifier.") for k in state) else "embedding"
        self.prefix = "roberta." if any(k.startswith("roberta.") for k in state) else ""
        # The embedder's pooler takes no part in the embedding (CLS pooling), so it is left out as kotune leaves it.
        self.weights = torch.nn.ParameterDict({k.replace(".", "__"): torch.nn.Parameter(v) for k, v in state.items()
                                               if not k.endswith("position_ids") and not k.startswith("pooler.")})

    def w(self, name, prefixed=True):
        return self.weights[((self.prefix if prefixed else "") + name).replace(".", "__")]

    def linear(self, x, name, prefixed=True):
        return F.linear(x, self.w(name + ".weight", prefixed), self.w(name + ".bias", prefixed))

    def layer_norm(self, x, name):
        return F.layer_norm(x, x.shape[-1:], self.w(name + ".weight"), self.w(name + ".bias"), self.cfg["layer_norm_eps"])

    def forward(self, ids, mask):
        cfg, pad = self.cfg, self.cfg["pad_token_id"]
        hidden_dropout, attention_dropout = cfg["hidden_dropout_prob"], cfg["attention_probs_dropout_prob"]
        not_pad = (ids != pad).long()
        positions = torch.cumsum(not_pad, 1) * not_pad + pad
        x = self.w("embeddings.word_embeddings.weight")[ids] + self.w("embeddings.position_embeddings.weight")[positions] \
            + self.w("embeddings.token_type_embeddings.weight")[0]
        x = F.dropout(self.layer_norm(x, "embeddings.LayerNorm"), hidden_dropout, self.training)
        B, S, H = x.shape
        heads = cfg["num_attention_heads"]
        d = H // heads
        additive_mask = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        split = lambda t: t.view(B, S, heads, d).transpose(1, 2)
        for i in range(cfg["num_hidden_layers"]):
            L = f"encoder.layer.{i}."
            q, k, v = (split(self.linear(x, L + "attention.self." + n)) for n in ("query", "key", "value"))
            probs = F.dropout(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + additive_mask, -1), attention_dropout, self.training)
            context = (probs @ v).transpose(1, 2).reshape(B, S, H)
            a = self.layer_norm(F.dropout(self.linear(context, L + "attention.output.dense"), hidden_dropout, self.training) + x,
                                L + "attention.output.LayerNorm")
            h = F.gelu(self.linear(a, L + "intermediate.dense"))
            x = self.layer_norm(F.dropout(self.linear(h, L + "output.dense"), hidden_dropout, self.training) + a, L + "output.LayerNorm")
        if self.head == "classifier":
            h = torch.tanh(self.linear(F.dropout(x[:, 0], hidden_dropout, self.training), "classifier.dense", prefixed=False))
            return self.linear(F.dropout(h, hidden_dropout, self.training), "classifier.out_proj", prefixed=False).squeeze(-1)
        return F.normalize(x[:, 0], dim=-1)


def adamw(model, w):
    """Hugging Face Trainer's AdamW: decay on every weight but the biases and LayerNorm weights."""
    decay = [p for n, p in model.weights.items() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.weights.items() if n.endswith("bias") or "LayerNorm" in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": w["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=w["learning_rate"])


def run(w):
    cfg = json.load(open(f"{w['model']}/config.json"))
    model = XLMRoberta(cfg, read_safetensors(f"{w['model']}/model.safetensors"))
    forwards = [(torch.tensor(f["inputIds"]), torch.tensor(f["attentionMask"])) for f in w["forwards"]]
    training = w["task"].startswith("train")
    model.train(training)
    optimizer = adamw(model, w) if training else None
    outputs = []
    optimizer_seconds = []

    def embedder_loss(queries, positives):
        scores = F.normalize(queries, dim=-1) @ F.normalize(positives, dim=-1).T * w["scale"]
        return F.cross_entropy(scores, torch.arange(scores.shape[0]))

    def grad_cache(columns, size):
        """Embeddings without a graph, the loss's gradient on them, then each mini-batch again under the same RNG state."""
        chunks = [[(ids[i:i + size], mask[i:i + size]) for i in range(0, ids.shape[0], size)] for ids, mask in columns]
        states, cached = [], []
        with torch.no_grad():
            for column in chunks:
                states.append([])
                parts = []
                for ids, mask in column:
                    states[-1].append(torch.get_rng_state())
                    parts.append(model(ids, mask))
                cached.append(torch.cat(parts).requires_grad_())
        embedder_loss(*cached).backward()
        for c, column in enumerate(chunks):
            grads = cached[c].grad.split(size)
            for (ids, mask), state, grad in zip(column, states[c], grads):
                torch.set_rng_state(state)
                (model(ids, mask) * grad).sum().backward()

    def step():
        if not training:
            with torch.no_grad():
                outputs.append(torch.cat([model(ids, mask) for ids, mask in forwards]).flatten().tolist())
            return
        optimizer.zero_grad()
        if w["task"] == "train-reranker":
            (ids, mask), = forwards
            logits = model(ids, mask).view(-1, w["group_size"])
            loss = F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))
        elif w.get("mini_batch_size"):
            grad_cache(forwards, w["mini_batch_size"])
            loss = None
        else:
            loss = embedder_loss(*(model(ids, mask) for ids, mask in forwards))
        if loss is not None:
            loss.backward()
        start = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), w["max_grad_norm"])
        optimizer.step()
        optimizer_seconds.append(time.perf_counter() - start)

    for _ in range(w["warmup"]):
        step()
    start = time.perf_counter()
    for _ in range(w["steps"]):
        step()
    seconds = (time.perf_counter() - start) / w["steps"]
    return {
        "seconds_per_step": seconds,
        **({"optimizer_seconds": sum(optimizer_seconds[w["warmup"]:]) / w["steps"]} if optimizer_seconds else {}),
        "tokens": sum(int(mask.sum()) for _, mask in forwards),
        "items": sum(ids.shape[0] for ids, _ in forwards),
        **({"outputs": outputs[0]} if outputs else {}),
    }


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    results = {}
    for w in spec["workloads"]:
        results[w["name"]] = run(w)
        gc.collect()  # the previous model and optimizer go before the next are made
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "results": results,
    }))


if __name__ == "__main__":
    main()
