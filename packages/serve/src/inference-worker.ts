/**
 * The inference worker thread: it owns the TF.js backend and the models, and runs `Reranker.score` /
 * `Embedder.encode` (the public API, exactly what `kotune score` / `kotune encode` call) on the batches the main
 * thread sends, one at a time. Model compute is synchronous and would block an event loop for a whole forward
 * pass (seconds on a CPU); here it blocks only this thread, so the main thread keeps answering /health, queueing,
 * refusing with 503 and noticing disconnects while a batch runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { resolveModelPath } from '@kotune/hub';
import { initBackend } from '@kotune/engine';
import { Embedder, Reranker, readSentenceTransformerFolder } from '@kotune/xlm-roberta';
import type { LoadedModel, ModelKind, ModelSpec, WorkerRequest, WorkerResponse } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('inference-worker.ts runs as a worker thread (see inference.ts)');

const rerankers = new Map<string, Reranker>();
const embedders = new Map<string, Embedder>();
let log: ((line: string) => void) | null = (line) => process.stderr.write(`${line}\n`);

/**
 * A folder is a reranker when its config.json names `XLMRobertaForSequenceClassification` (what transformers and
 * `Reranker.save` write) and has no sentence-transformers `modules.json`; anything else is served as an embedder.
 */
function kindOf(folder: string): ModelKind {
  if (existsSync(join(folder, 'modules.json'))) return 'embedder';
  const configPath = join(folder, 'config.json');
  if (!existsSync(configPath)) return 'embedder'; // Embedder.load names the missing file
  let architectures: unknown;
  try {
    architectures = JSON.parse(readFileSync(configPath, 'utf8')).architectures;
  } catch {
    return 'embedder';
  }
  return Array.isArray(architectures) && architectures.includes('XLMRobertaForSequenceClassification') ? 'reranker' : 'embedder';
}

async function load(spec: ModelSpec): Promise<LoadedModel> {
  const folder = await resolveModelPath(spec.path, { log });
  const common = { name: spec.name, path: spec.path };
  if (kindOf(folder) === 'reranker') {
    const reranker = await Reranker.load(folder, { log });
    rerankers.set(spec.name, reranker);
    return {
      ...common,
      kind: 'reranker',
      tokenizerFolder: folder,
      maxInputLength: reranker.defaultMaxLength(),
      hiddenSize: reranker.config.hiddenSize,
      id2label: reranker.config.id2label,
      pooling: 'cls',
      normalize: false,
      prompts: {},
      doLowerCase: false,
    };
  }
  const embedder = await Embedder.load(folder, { log });
  embedders.set(spec.name, embedder);
  const st = readSentenceTransformerFolder(folder);
  return {
    ...common,
    kind: 'embedder',
    tokenizerFolder: join(folder, st?.transformerPath ?? ''),
    maxInputLength: embedder.maxSeqLength,
    hiddenSize: embedder.config.hiddenSize,
    id2label: {},
    pooling: embedder.pooling,
    normalize: embedder.normalize,
    prompts: embedder.prompts,
    doLowerCase: st?.doLowerCase ?? false,
  };
}

async function handle(message: WorkerRequest): Promise<WorkerResponse> {
  switch (message.type) {
    case 'load': {
      if (message.quiet) log = null;
      const info = await initBackend({ backend: message.backend, log });
      const models: LoadedModel[] = [];
      for (const spec of message.models) models.push(await load(spec));
      return { type: 'loaded', id: message.id, models, backend: info.description };
    }
    case 'score': {
      const reranker = rerankers.get(message.model)!;
      const scores = await reranker.score(message.pairs, { normalize: message.normalize, batchSize: message.batchSize });
      return { type: 'scores', id: message.id, scores };
    }
    case 'encode': {
      const embedder = embedders.get(message.model)!;
      const rows = await embedder.encode(message.texts, {
        prefix: message.prefix,
        normalize: message.normalize,
        batchSize: message.batchSize,
      });
      const dimension = rows[0]?.length ?? 0;
      const embeddings = new Float32Array(rows.length * dimension);
      rows.forEach((row, i) => embeddings.set(row, i * dimension));
      return { type: 'embeddings', id: message.id, embeddings, dimension };
    }
  }
}

// One message at a time, in arrival order: a batch never interleaves with another at an `await`.
let chain = Promise.resolve();
port.on('message', (message: WorkerRequest) => {
  chain = chain.then(async () => {
    let response: WorkerResponse;
    try {
      response = await handle(message);
    } catch (error) {
      response = { type: 'error', id: message.id, message: error instanceof Error ? error.message : String(error) };
    }
    port.postMessage(response, response.type === 'embeddings' ? [response.embeddings.buffer as ArrayBuffer] : []);
  });
});
