/**
 * The messages between the server's main thread and its inference worker (`inference-worker.ts`), and what the
 * worker reports about each model it loaded. Plain structured-clone data: no classes cross the thread boundary.
 */

export type ModelKind = 'reranker' | 'embedder';

/** One model to serve: `path` is a folder or a Hugging Face repo id, `name` what requests call it. */
export interface ModelSpec {
  name: string;
  path: string;
}

/** What the worker learnt loading a model; the main thread validates and counts tokens with it. */
export interface LoadedModel {
  name: string;
  /** The folder or repo id as given. */
  path: string;
  kind: ModelKind;
  /** Folder holding the tokenizer files (the Transformer module's folder for a sentence-transformers model). */
  tokenizerFolder: string;
  /** Longest input in tokens, special tokens included: what `kotune score` / `kotune encode` cut to by default. */
  maxInputLength: number;
  hiddenSize: number;
  /** Reranker labels (`config.json` `id2label`). */
  id2label: Record<string, string>;
  /** Embedder settings from the folder's sentence-transformers files (defaults for a plain folder). */
  pooling: string;
  normalize: boolean;
  prompts: Record<string, string>;
  doLowerCase: boolean;
}

export type WorkerRequest =
  /** `quiet`: no start-up line and no load warnings on stderr. */
  | { type: 'load'; id: number; models: ModelSpec[]; backend?: string; quiet?: boolean }
  | { type: 'score'; id: number; model: string; pairs: [string, string][]; normalize: boolean; batchSize: number }
  | { type: 'encode'; id: number; model: string; texts: string[]; prefix: string; normalize: boolean; batchSize: number };

export type WorkerResponse =
  | { type: 'loaded'; id: number; models: LoadedModel[]; backend: string }
  /** `scores`: one per pair (float64, as `Reranker.score` returns them). */
  | { type: 'scores'; id: number; scores: number[] }
  /** `embeddings`: `count` rows of `dimension` floats, row-major. */
  | { type: 'embeddings'; id: number; embeddings: Float32Array; dimension: number }
  | { type: 'error'; id: number; message: string };
