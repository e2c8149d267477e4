/**
 * `kotune`: the whole API in one import — the model and its `Reranker` / `Embedder` (@kotune/xlm-roberta), the
 * trainer, evaluation and mining, ONNX export, the HTTP server (`createServer`), losses, optimizer, metrics, data,
 * tokenizer, weights, hub and the backend (`initBackend`, `tf`). Each also installs on its own as `@kotune/<name>`.
 */
export * from '@kotune/engine';
export * from '@kotune/tokenizer';
export * from '@kotune/weights';
export * from '@kotune/hub';
export * from '@kotune/xlm-roberta';
export * from '@kotune/losses';
export * from '@kotune/optim';
export * from '@kotune/metrics';
export * from '@kotune/data';
export * from '@kotune/trainer';
export * from '@kotune/eval';
export * from '@kotune/onnx';
export * from '@kotune/serve';
