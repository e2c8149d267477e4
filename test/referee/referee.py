"""The Python side of test/referee/referee.test.ts: the real libraries' outputs, in one process.

    referee.py SPEC.json RESULT.json

1. Saves folders the way the libraries do, from the tiny fixture models:
   - with sentence-transformers (the installed version, 6.x): a CLS + Normalize embedder with query/document
     prompts and a default prompt, a mean embedder with a 48-token max length, and a CrossEncoder;
   - in the layouts of sentence-transformers 2.2.2 and 4.1.0, file by file as those versions' `save` wrote them
     (modules.json types `sentence_transformers.models.*`, their Pooling keys, `max_seq_length` in
     sentence_bert_config.json), since only the current version installs here;
   - with transformers' `save_pretrained`: a sequence-classification reranker and a bare encoder.
2. Computes, for those folders and the folders kotune wrote (SPEC's "kotune"), what the libraries compute:
   - sentence-transformers folders: `SentenceTransformer(dir).encode` with the default prompt, each named prompt
     and no prompt; the longest text at the folder's max length;
   - embedders of kotune: also transformers' `AutoModel` + the folder's pooling and normalisation;
   - rerankers: `AutoModelForSequenceClassification` logits of `tokenizer(q, p, truncation=True)` and
     sentence-transformers' `CrossEncoder.predict` without activation;
   - a maximal input: `truncation=True` with the folder's own `model_max_length`; and, for the folder whose
     model has 512 positions, the same input with the 512 that kotune used to write, which must fail.
Everything in float32 on the CPU, one thread, offline.
"""

import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import CrossEncoder, SentenceTransformer  # noqa: E402
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

torch.set_num_threads(1)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)


def save_hf(source, out, model_class):
    model_class.from_pretrained(source).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)


def old_layout(source, out, version, pooling, normalize, max_seq_length, prompts=None):
    """An embedder folder as sentence-transformers `version` (2.2.2 or 4.1.0) saved it."""
    save_hf(source, out, AutoModel)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    write_json(os.path.join(out, "modules.json"), modules)
    write_json(os.path.join(out, "sentence_bert_config.json"), {"max_seq_length": max_seq_length, "do_lower_case": False})
    flags = {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    config = {"__version__": {"sentence_transformers": version, "transformers": "4.30.2", "pytorch": "2.0.1"}}
    if version >= "3":
        flags.update({"pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True})
        config.update({"prompts": prompts or {}, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    os.makedirs(os.path.join(out, "1_Pooling"))
    write_json(os.path.join(out, "1_Pooling", "config.json"), flags)
    if normalize:
        os.makedirs(os.path.join(out, "2_Normalize"))
    write_json(os.path.join(out, "config_sentence_transformers.json"), config)


def build(spec, out):
    """The folders the libraries save; returns name -> (kind, path)."""
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    embedder, reranker = spec["fixture_embedder"], spec["fixture_reranker"]
    folders = {}

    path = os.path.join(out, "st6-cls-prompts")
    SentenceTransformer(
        modules=[Transformer(embedder), Pooling(32, "cls"), Normalize()],
        prompts={"query": "query: ", "document": "passage: "},
        default_prompt_name="query",
    ).save(path)
    folders["st6-cls-prompts"] = ("embedder", path)

    path = os.path.join(out, "st6-mean-48")
    SentenceTransformer(modules=[Transformer(embedder, max_seq_length=48), Pooling(32, "mean")]).save(path)
    folders["st6-mean-48"] = ("embedder", path)

    path = os.path.join(out, "st2-mean-40")
    old_layout(embedder, path, "2.2.2", "mean", normalize=False, max_seq_length=40)
    folders["st2-mean-40"] = ("embedder", path)

    path = os.path.join(out, "st4-cls-prompts")
    old_layout(embedder, path, "4.1.0", "cls", normalize=True, max_seq_length=64, prompts={"query": "query: ", "passage": "passage: "})
    folders["st4-cls-prompts"] = ("embedder", path)

    path = os.path.join(out, "st6-cross-encoder")
    CrossEncoder(reranker).save(path)
    folders["st6-cross-encoder"] = ("reranker", path)

    path = os.path.join(out, "hf-reranker")
    save_hf(reranker, path, AutoModelForSequenceClassification)
    folders["hf-reranker"] = ("reranker", path)

    path = os.path.join(out, "hf-encoder")
    save_hf(embedder, path, AutoModel)
    folders["hf-encoder"] = ("encoder", path)
    return folders


def rows(tensor):
    return tensor.detach().float().numpy().astype(float).tolist()


def pooled(path, texts, pooling, normalize, max_length=None):
    """transformers' own forward, pooled as the folder says; truncation at the tokenizer's model_max_length."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer(texts, truncation=True, padding=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    if pooling == "cls":
        vectors = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if normalize:
        vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
    return {"embeddings": rows(vectors), "lengths": batch["attention_mask"].sum(1).tolist(), "model_max_length": tokenizer.model_max_length}


def sentence_transformer(path, texts, long_text):
    model = SentenceTransformer(path, device="cpu")
    result = {"max_seq_length": model.max_seq_length, "prompts": model.prompts, "default_prompt_name": model.default_prompt_name, "encode": {}}
    encode = lambda inputs, **kwargs: rows(torch.from_numpy(model.encode(inputs, batch_size=4, **kwargs)))  # noqa: E731
    result["encode"]["default"] = encode(texts)
    result["encode"]["none"] = encode(texts, prompt="")
    for name in model.prompts:
        result["encode"][f"prompt:{name}"] = encode(texts, prompt_name=name)
    # The longest input: the text with the default prompt, cut at max_seq_length by sentence-transformers itself.
    prompt = model.prompts.get(model.default_prompt_name, "") if model.default_prompt_name else ""
    result["long"] = {"embedding": encode([long_text])[0], "length": int(model.preprocess([prompt + long_text])["input_ids"].shape[1])}
    return result


def reranker_outputs(path, pairs, with_cross_encoder=True):
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    batch = tokenizer([q for q, _ in pairs], [p for _, p in pairs], truncation=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[:, 0]
    result = {"logits": rows(logits), "lengths": batch["attention_mask"].sum(1).tolist(), "model_max_length": tokenizer.model_max_length}
    if with_cross_encoder:
        cross = CrossEncoder(path, device="cpu")
        result["cross_encoder"] = [float(x) for x in cross.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=4)]
    return result


def overlong(path, kind, text, length):
    """The same input cut at `length` instead of the folder's model_max_length: the error a client gets, or None."""
    tokenizer = AutoTokenizer.from_pretrained(path, model_max_length=length)
    model_class = AutoModelForSequenceClassification if kind == "reranker" else AutoModel
    model = model_class.from_pretrained(path).eval()
    batch = tokenizer(*(["질문", text] if kind == "reranker" else [text]), truncation=True, return_tensors="pt")
    try:
        with torch.no_grad():
            model(**batch)
        return None
    except Exception as error:  # what a user sees: torch's IndexError from the position embedding lookup
        return f"{type(error).__name__}: {error}"


def main():
    spec = json.load(open(sys.argv[1]))
    out = spec["out"]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    texts, long_text, pairs = spec["texts"], spec["long_text"], spec["pairs"]
    results = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "sentence-transformers": sentence_transformers.__version__},
        "folders": {},
    }
    folders = build(spec, out)
    for name, (kind, path) in folders.items():
        entry = {"path": path, "kind": kind}
        if kind == "embedder":
            entry.update(sentence_transformer(path, texts, long_text))
        elif kind == "encoder":
            entry.update(pooled(path, texts + [long_text], "cls", True))
        else:
            entry.update(reranker_outputs(path, pairs))
        results["folders"][name] = entry
    for name, folder in spec["kotune"].items():
        path, kind = folder["path"], folder["kind"]
        entry = {"path": path, "kind": kind}
        if kind == "embedder":
            entry.update(sentence_transformer(path, texts, long_text))
            entry["transformers"] = pooled(path, texts + [long_text], folder["pooling"], folder["normalize"])
        else:
            entry.update(reranker_outputs(path, pairs))
        if folder.get("overlong") is not None:
            entry["overlong_error"] = overlong(path, kind, long_text, folder["overlong"])
        results["kotune"] = results.get("kotune", {})
        results["kotune"][name] = entry
    write_json(sys.argv[2], results)


if __name__ == "__main__":
    main()
