/**
 * The main thread's handle on the inference worker (`inference-worker.ts`): starts it, loads the models, and turns
 * its messages into promises. A worker that dies (an uncaught error, out of memory) fails whatever it had pending
 * and leaves the handle unhealthy, so /health answers 503 instead of the server hanging.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { LoadedModel, ModelSpec, WorkerRequest, WorkerResponse } from './protocol.ts';

type Pending = { resolve: (response: WorkerResponse) => void; reject: (error: Error) => void };
type Distribute<T> = T extends unknown ? Omit<T, 'id'> : never;

/**
 * The worker runs this package's own sources: `inference-worker.ts` next to this file when run from TypeScript
 * (then tsx is registered inside the worker first: Node 20 does not pass `--import tsx` hooks on to workers), or
 * the compiled `.js` of a build.
 */
function spawnWorker(): Worker {
  const extension = extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./inference-worker${extension}`, import.meta.url).href;
  if (extension !== '.ts') return new Worker(new URL(entry));
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true });
}

export class InferenceWorker {
  /** The loaded models, in the order given. */
  models: readonly LoadedModel[] = [];
  /** The backend's start-up line, e.g. `backend: wasm (threads 1, simd); products: ...`. */
  backend = '';
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | null = null;
  private closing = false;

  private constructor(worker: Worker) {
    this.worker = worker;
    worker.on('message', (response: WorkerResponse) => {
      const pending = this.pending.get(response.id);
      if (!pending) return;
      this.pending.delete(response.id);
      if (response.type === 'error') pending.reject(new Error(response.message));
      else pending.resolve(response);
    });
    worker.on('error', (error) => this.fail(error));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`the inference worker stopped (exit code ${code})`));
    });
  }

  /** Starts the worker and loads every model (in order); rejects with the first load error. */
  static async start(models: ModelSpec[], options: { backend?: string; quiet?: boolean } = {}): Promise<InferenceWorker> {
    const handle = new InferenceWorker(spawnWorker());
    try {
      const loaded = await handle.call({ type: 'load', models, backend: options.backend, quiet: options.quiet });
      if (loaded.type !== 'loaded') throw new Error(`inference worker: unexpected reply ${loaded.type}`);
      handle.models = loaded.models;
      handle.backend = loaded.backend;
      return handle;
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** False once the worker has died. */
  get healthy(): boolean {
    return this.failure === null;
  }

  async score(model: string, pairs: [string, string][], normalize: boolean, batchSize: number): Promise<number[]> {
    const response = await this.call({ type: 'score', model, pairs, normalize, batchSize });
    if (response.type !== 'scores') throw new Error(`inference worker: unexpected reply ${response.type}`);
    return response.scores;
  }

  async encode(model: string, texts: string[], prefix: string, normalize: boolean, batchSize: number): Promise<Float32Array[]> {
    const response = await this.call({ type: 'encode', model, texts, prefix, normalize, batchSize });
    if (response.type !== 'embeddings') throw new Error(`inference worker: unexpected reply ${response.type}`);
    const { embeddings, dimension } = response;
    return Array.from({ length: texts.length }, (_, i) => embeddings.subarray(i * dimension, (i + 1) * dimension));
  }

  /** Stops the worker (its models go with it); pending calls fail. */
  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
    this.fail(new Error('the inference worker was stopped'));
  }

  private fail(error: Error): void {
    if (this.failure === null) this.failure = error;
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(error);
    }
  }

  private call(request: Distribute<WorkerRequest>): Promise<WorkerResponse> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id } as WorkerRequest);
    });
  }
}
