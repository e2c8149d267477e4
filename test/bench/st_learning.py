"""sentence-transformers' side of `pnpm bench learning` (learning.bench.ts), in one process:

    st_learning.py SPEC.json RESULT.json

For each job of SPEC, trains the job's initial folder (the very weights kotune starts from) with
sentence-transformers' own trainer on the same data and hyperparameters:

  embedder  SentenceTransformerTrainer, MultipleNegativesRankingLoss(scale) over (query, positive) pairs,
            BatchSamplers.NO_DUPLICATES (kotune's embedder batches hold no duplicate texts either)
  reranker  CrossEncoderTrainer, BinaryCrossEntropyLoss over (query, passage, label) rows: each line's positive
            (label 1) and its negatives (label 0), batch_size * group_size rows a step, as kotune's `bce` takes
            batch_size groups of group_size pairs

AdamW (transformers' default), linear schedule with warmup, gradient clipping at 1, one thread; the loss is
logged at every step. Then scores the initial model, sentence-transformers' model and kotune's with
sentence-transformers' evaluators on the held-out lines: InformationRetrievalEvaluator (every distinct passage of
the eval file is the corpus, each query's positives the relevant ones) and CrossEncoderRerankingEvaluator (each
query's positive among its negatives). Wall time is that of `trainer.train()` alone.
"""

import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402
import transformers  # noqa: E402
import sentence_transformers  # noqa: E402
from datasets import Dataset  # noqa: E402
from sentence_transformers import CrossEncoder, SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments  # noqa: E402
from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments  # noqa: E402
from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator  # noqa: E402
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss  # noqa: E402
from sentence_transformers.evaluation import InformationRetrievalEvaluator  # noqa: E402
from sentence_transformers.losses import MultipleNegativesRankingLoss  # noqa: E402
from sentence_transformers.training_args import BatchSamplers  # noqa: E402

transformers.logging.set_verbosity_error()


def read_lines(path):
    with open(path, encoding="utf8") as f:
        return [json.loads(line) for line in f if line.strip()]


def training_args(job, args_class, **extra):
    return args_class(
        output_dir=job["output"],
        max_steps=job["steps"],
        learning_rate=job["learning_rate"],
        warmup_steps=job["warmup_ratio"],  # a float in [0, 1) is a ratio of the steps (transformers 5)
        lr_scheduler_type="linear",
        weight_decay=job["weight_decay"],
        max_grad_norm=1.0,
        seed=job["seed"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **extra,
    )


def step_losses(trainer):
    return [[entry["step"], entry["loss"]] for entry in trainer.state.log_history if "loss" in entry]


def embedder_eval(eval_lines):
    queries, corpus, relevant, ids = {}, {}, {}, {}
    for i, line in enumerate(eval_lines):
        for text in line["pos"] + line["neg"]:
            if text not in ids:
                ids[text] = str(len(ids))
                corpus[ids[text]] = text
        queries[str(i)] = line["query"]
        relevant[str(i)] = {ids[text] for text in line["pos"]}
    return InformationRetrievalEvaluator(
        queries, corpus, relevant, name="heldout", batch_size=64, show_progress_bar=False, write_csv=False,
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 3, 5, 10], precision_recall_at_k=[1, 3, 5, 10], map_at_k=[100],
    )


def reranker_eval(eval_lines):
    samples = [{"query": line["query"], "positive": line["pos"], "negative": line["neg"]} for line in eval_lines]
    return CrossEncoderRerankingEvaluator(samples, at_k=10, name="heldout", batch_size=64, write_csv=False)


def metrics(evaluator, model):
    """The evaluator's metrics without its name prefix (`cosine_mrr@10`, `ndcg@10`, ...)."""
    return {key.split("_", 1)[1]: float(value) for key, value in evaluator(model).items()}


def train_embedder(job, train_lines):
    model = SentenceTransformer(job["init"], device="cpu")
    model.max_seq_length = job["max_seq_length"]
    data = Dataset.from_dict({"anchor": [l["query"] for l in train_lines], "positive": [l["pos"][0] for l in train_lines]})
    args = training_args(job, SentenceTransformerTrainingArguments, per_device_train_batch_size=job["batch_size"], batch_sampler=BatchSamplers.NO_DUPLICATES)
    loss = MultipleNegativesRankingLoss(model, scale=job["scale"])
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss)
    started = time.perf_counter()
    trainer.train()
    return model, time.perf_counter() - started, step_losses(trainer)


def train_reranker(job, train_lines):
    model = CrossEncoder(job["init"], num_labels=1, max_length=job["max_length"], device="cpu")
    group = job["group_size"]
    rows = {"query": [], "passage": [], "label": []}
    for line in train_lines:
        for passage, label in [(line["pos"][0], 1.0)] + [(negative, 0.0) for negative in line["neg"][: group - 1]]:
            rows["query"].append(line["query"])
            rows["passage"].append(passage)
            rows["label"].append(label)
    args = training_args(job, CrossEncoderTrainingArguments, per_device_train_batch_size=job["batch_size"] * group)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), loss=BinaryCrossEntropyLoss(model))
    started = time.perf_counter()
    trainer.train()
    return model, time.perf_counter() - started, step_losses(trainer)


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["threads"])
    results = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "sentence-transformers": sentence_transformers.__version__},
        "jobs": {},
    }
    for job in spec["jobs"]:
        train_lines, eval_lines = read_lines(job["train"]), read_lines(job["eval"])
        embedder = job["kind"] == "embedder"
        evaluator = embedder_eval(eval_lines) if embedder else reranker_eval(eval_lines)
        load = (lambda path: SentenceTransformer(path, device="cpu")) if embedder else (lambda path: CrossEncoder(path, max_length=job["max_length"], device="cpu"))
        runs = {}
        for seed in job["seeds"]:
            torch.manual_seed(seed)
            model, seconds, losses = (train_embedder if embedder else train_reranker)({**job, "seed": seed}, train_lines)
            runs[str(seed)] = {"seconds": seconds, "losses": losses, "metrics": metrics(evaluator, model)}
            print(f"{job['name']}: sentence-transformers (seed {seed}) trained in {seconds:.1f} s", file=sys.stderr)
        results["jobs"][job["name"]] = {
            "init": metrics(evaluator, load(job["init"])),
            "sentence_transformers": runs,
            "kotune": {seed: metrics(evaluator, load(path)) for seed, path in job["kotune"].items()},
        }
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
