/**
 * `createServer`: rerankers and embedders behind the HTTP APIs RAG frameworks call, on fastify.
 *
 *   POST /rerank           TEI: {query, texts, raw_scores, return_text, truncate} → [{index, text?, score}], best first
 *   POST /embed            TEI: {inputs, normalize, prompt_name, dimensions, truncate} → [[floats]]
 *   GET  /health, /info    TEI (and /metrics: Prometheus text with the queue and batch counters)
 *   POST /v1/rerank        Cohere / Jina: {model, query, documents, top_n, return_documents} → {results: [{index, relevance_score}]}
 *   POST /v1/embeddings    OpenAI (as TEI serves it; also /embeddings): {model, input} → {data: [{embedding, index}], usage}
 *
 * Every request may name its model (`model`: the folder name, or NAME of `NAME=DIR`); it may be left out when one
 * model of the route's kind is served, and then an unknown name is ignored, as TEI ignores OpenAI's `model` (so
 * clients that always send a default model name work).
 *
 * Scores are `Reranker.score` with `normalize` (the sigmoid, as `kotune score --normalize`) unless `raw_scores`;
 * embeddings are `Embedder.encode` with the folder's pooling, normalisation and max_seq_length and, with
 * `prompt_name`, the folder's prompt before each text, as `kotune encode --prefix`. The models run in a worker
 * thread (inference-worker.ts) fed by the batcher (batcher.ts); this thread parses, validates, counts tokens,
 * queues and answers, and never computes a forward pass, so /health, 503s and disconnects stay prompt under load.
 * The contract (every field, default and error, and where it differs from TEI): docs/serve.md.
 */
import { randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { Batcher, type BatcherStats, type JobResult, type Runner } from './batcher.ts';
import { ApiError, backend, batchTooLarge, emptyList, inputValidation, openAiErrorBody, teiErrorBody } from './errors.ts';
import { InferenceWorker } from './inference.ts';
import { InputChecker, type Checked } from './inputs.ts';
import type { LoadedModel, ModelKind, ModelSpec } from './protocol.ts';
import {
  cohereRerank,
  openAiEmbeddings,
  teiEmbed,
  teiRerank,
  type CohereRerankBody,
  type OpenAiEmbeddingsBody,
  type TeiEmbedBody,
  type TeiRerankBody,
} from './schemas.ts';

export interface ServeOptions {
  /** Model folders or Hugging Face repo ids; a bare string is named by its last path component. */
  models: (string | ModelSpec)[];
  /** Interface to bind (default 127.0.0.1: loopback only). */
  host?: string;
  /** Port (default 3000, TEI's; 0 picks a free one). */
  port?: number;
  /** Requests must send `Authorization: Bearer <apiKey>` (default `KOTUNE_API_KEY`; none: no check). */
  apiKey?: string | null;
  /** TF.js backend for the worker (default: `KOTUNE_BACKEND`, then the engine's order). */
  backend?: string;
  /** Inputs queued or computing, at most; past it 503 (TEI `--max-concurrent-requests`, default 512). */
  maxConcurrentRequests?: number;
  /** Tokens in one batch round (TEI `--max-batch-tokens`, default 16384). */
  maxBatchTokens?: number;
  /** Inputs in one batch round (TEI `--max-batch-requests`, default none). */
  maxBatchRequests?: number | null;
  /** Inputs in one request, at most; past it 413 (TEI `--max-client-batch-size`, default 32). */
  maxClientBatchSize?: number;
  /** How long an idle worker waits for more requests before a round that is not full (default 5 ms). */
  maxBatchWaitMs?: number;
  /** Inputs per forward pass inside a round (`batchSize` of score / encode, default 32 as the CLI). */
  batchSize?: number;
  /** Largest request body in bytes; past it 413 (TEI `--payload-limit`, default 2,000,000). */
  payloadLimit?: number;
  /** Truncate over-long inputs when a request does not say (TEI `--auto-truncate`; default false: 422). */
  autoTruncate?: boolean;
  /** No start-up line and no load warnings on stderr. */
  quiet?: boolean;
}

export interface KotuneServer {
  /** The served models, in the order given. */
  readonly models: readonly LoadedModel[];
  /** The worker's backend start-up line. */
  readonly backend: string;
  /** Starts listening; resolves with the base URL, e.g. `http://127.0.0.1:3000`. */
  listen(): Promise<string>;
  /**
   * Stops taking requests (new connections are refused, requests on open connections get 503), finishes every
   * request already taken, then stops the worker.
   */
  close(): Promise<void>;
  /** Queue and batch counters. */
  stats(): BatcherStats;
}

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** A model's name when none is given: the last path component of its folder or repo id. */
export function defaultModelName(path: string): string {
  return basename(path.replace(/[/\\]+$/, ''));
}

/** The client went away: its work is dropped and nothing is sent. */
class ClientGone extends Error {}

/** TEI's `ResponseMetadata` headers (router/src/lib.rs), times in milliseconds. */
function setMetadataHeaders(
  reply: FastifyReply,
  started: number,
  tokenized: number,
  checked: Checked<unknown>,
  job: JobResult<unknown>,
): void {
  const total = String(Math.round(performance.now() - started));
  reply.headers({
    'x-compute-time': total,
    'x-compute-characters': String(checked.characters),
    'x-compute-tokens': String(checked.tokens.reduce((a, b) => a + b, 0)),
    'x-total-time': total,
    'x-tokenization-time': String(Math.round(tokenized - started)),
    'x-queue-time': String(Math.round(job.queueMs)),
    'x-inference-time': String(Math.round(job.inferenceMs)),
  });
}

/** An AbortSignal that fires when the client closes the connection before its answer was written. */
function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new ClientGone('the client closed the connection'));
  });
  return controller.signal;
}

/** `Authorization: Bearer <key>` compared in constant time (digests of equal length). */
function keyMatches(header: string | undefined, key: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return header !== undefined && timingSafeEqual(digest(header), digest(`Bearer ${key}`));
}

/** TEI truncates on the right unless told `left`; our tokenizer and FlagReranker's rule keep the start only. */
function checkDirection(direction: string | undefined): void {
  if (direction !== undefined && direction.toLowerCase() === 'left') {
    throw inputValidation(
      '`truncation_direction` "left" is not supported: inputs are cut on the right, as the model folder\'s tokenizer and `kotune score` / `kotune encode` do',
    );
  }
}

/** A 422's text from ajv's first error: which field, and what it must be. */
function describeValidation(error: FastifyError): string {
  type AjvError = {
    instancePath: string;
    message?: string;
    keyword: string;
    parentSchema?: { description?: string };
    params?: { missingProperty?: string };
  };
  // A failed `anyOf` lists each branch's error, then its own: that one says what the field may be.
  const errors = (error.validation ?? []) as AjvError[];
  const first = errors.find((e) => e.keyword === 'anyOf') ?? errors[0];
  if (!first) return error.message;
  const path = first.instancePath
    .split('/')
    .slice(1)
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : `${i > 0 ? '.' : ''}${part}`))
    .join('');
  if (first.keyword === 'required') return `missing field \`${first.params?.missingProperty}\``;
  const what = first.parentSchema?.description;
  return `\`${path || 'body'}\` ${what && first.keyword !== 'enum' ? `must be ${what}` : first.message}${what && first.keyword === 'enum' ? `: ${what}` : ''}`;
}

export async function createServer(options: ServeOptions): Promise<KotuneServer> {
  const specs = options.models.map((model) => (typeof model === 'string' ? { name: defaultModelName(model), path: model } : model));
  if (specs.length === 0) throw new Error('serve: give at least one model');
  const names = new Set<string>();
  for (const { name } of specs) {
    if (names.has(name)) throw new Error(`serve: two models are named '${name}'; name them apart with NAME=DIR`);
    names.add(name);
  }
  const apiKey = options.apiKey === undefined ? process.env.KOTUNE_API_KEY || null : options.apiKey;
  const limits = {
    maxConcurrentRequests: options.maxConcurrentRequests ?? 512,
    maxBatchTokens: options.maxBatchTokens ?? 16384,
    maxBatchRequests: options.maxBatchRequests ?? null,
    maxClientBatchSize: options.maxClientBatchSize ?? 32,
    maxWaitMs: options.maxBatchWaitMs ?? 5,
    batchSize: options.batchSize ?? 32,
    payloadLimit: options.payloadLimit ?? 2_000_000,
    autoTruncate: options.autoTruncate ?? false,
  };
  const counts = ['maxConcurrentRequests', 'maxBatchTokens', 'maxClientBatchSize', 'batchSize', 'payloadLimit'] as const;
  for (const key of counts) {
    if (!Number.isInteger(limits[key]) || limits[key] <= 0) throw new Error(`serve: ${key} must be a positive integer, got ${limits[key]}`);
  }
  if (limits.maxBatchRequests !== null && (!Number.isInteger(limits.maxBatchRequests) || limits.maxBatchRequests <= 0)) {
    throw new Error(`serve: maxBatchRequests must be a positive integer, got ${limits.maxBatchRequests}`);
  }
  if (!(limits.maxWaitMs >= 0)) throw new Error(`serve: maxBatchWaitMs must be ≥ 0, got ${limits.maxWaitMs}`);

  const worker = await InferenceWorker.start(specs, { backend: options.backend, quiet: options.quiet });
  const checkers = new Map(worker.models.map((model) => [model.name, new InputChecker(model)]));
  const batcher = new Batcher(limits);
  let closing = false;

  /** The model a request names, or the only one of its kind (TEI's 424 when the route does not fit the model). */
  function pick(kind: ModelKind, name: string | null | undefined): InputChecker {
    const notKind =
      kind === 'reranker' ? 'Backend error: model is not a re-ranker model' : 'Backend error: Model is not an embedding model';
    const named = name ? checkers.get(name) : undefined;
    if (named) {
      if (named.model.kind !== kind) throw backend(notKind);
      return named;
    }
    const ofKind = [...checkers.values()].filter((checker) => checker.model.kind === kind);
    if (ofKind.length === 1) return ofKind[0]!;
    if (ofKind.length === 0) throw backend(notKind);
    const served = ofKind.map((checker) => checker.model.name).join(', ');
    if (name) throw new ApiError(404, 'NotFound', `model '${name}' is not served; the ${kind}s are: ${served}`);
    throw new ApiError(422, 'Validation', `several ${kind}s are served (${served}): name one in \`model\``);
  }

  function checkBatchSize(size: number): void {
    if (size > limits.maxClientBatchSize) throw batchTooLarge(size, limits.maxClientBatchSize);
  }

  function scores(
    checker: InputChecker,
    checked: Checked<[string, string]>,
    normalize: boolean,
    reply: FastifyReply,
  ): Promise<JobResult<number>> {
    const { name } = checker.model;
    const run: Runner<[string, string], number> = (pairs) => worker.score(name, pairs, normalize, limits.batchSize);
    return batcher.submit(`${name}\0score\0${normalize}`, run, checked.inputs, checked.tokens, disconnectSignal(reply));
  }

  function embeddings(
    checker: InputChecker,
    checked: Checked<string>,
    prefix: string,
    normalize: boolean,
    reply: FastifyReply,
  ): Promise<JobResult<Float32Array>> {
    const { name } = checker.model;
    const run: Runner<string, Float32Array> = (texts) => worker.encode(name, texts, prefix, normalize, limits.batchSize);
    return batcher.submit(`${name}\0encode\0${prefix}\0${normalize}`, run, checked.inputs, checked.tokens, disconnectSignal(reply));
  }

  /**
   * Embeddings of `texts` for /embed and /v1/embeddings. `dimensions` keeps the first N values and then normalises
   * (TEI's `embed_pooled`: truncate, then scale by 1/‖x‖ summed in float64); without it the embedder normalises
   * itself, so the values are exactly `kotune encode`'s.
   */
  async function embed(
    checker: InputChecker,
    texts: string[],
    settings: { truncate: boolean; promptName?: string | null; normalize?: boolean; dimensions?: number | null },
    reply: FastifyReply,
    started: number,
  ): Promise<{ vectors: Float32Array[]; tokens: number }> {
    const { model } = checker;
    let prefix = '';
    if (settings.promptName != null) {
      const available = Object.keys(model.prompts);
      if (available.length === 0)
        throw inputValidation(
          `\`prompt_name\` is set to \`${settings.promptName}\` but no prompts were found in the Sentence Transformers configuration`,
        );
      if (!Object.hasOwn(model.prompts, settings.promptName)) {
        throw inputValidation(
          `\`prompt_name\` is set to \`${settings.promptName}\` but it was not found in the Sentence Transformers prompts. Available prompts: ${JSON.stringify(available)}`,
        );
      }
      prefix = model.prompts[settings.promptName]!;
    }
    const dimensions = settings.dimensions ?? null;
    if (dimensions === 0) throw inputValidation('`dimensions` should be positive');
    if (dimensions !== null && dimensions > model.hiddenSize)
      throw inputValidation('`dimensions` should be smaller than the maximum embedding dimension.');
    // Unsaid, `normalize` is the folder's (its Normalize module, as sentence-transformers and `kotune encode`);
    // TEI defaults to true. The two differ only for a sentence-transformers folder without Normalize.
    const normalize = settings.normalize ?? model.normalize;
    const checked = checker.texts(texts, prefix, settings.truncate);
    const tokenized = performance.now();
    const job = await embeddings(checker, checked, prefix, dimensions === null && normalize, reply);
    setMetadataHeaders(reply, started, tokenized, checked, job);
    const vectors =
      dimensions === null
        ? job.outputs
        : job.outputs.map((vector) => {
            const kept = vector.slice(0, dimensions);
            if (!normalize) return kept;
            let sum = 0;
            for (const v of kept) sum += v * v;
            const scale = Math.fround(1 / Math.sqrt(sum));
            return kept.map((v) => v * scale);
          });
    return { vectors, tokens: checked.tokens.reduce((a, b) => a + b, 0) };
  }

  const app = Fastify({
    bodyLimit: limits.payloadLimit,
    return503OnClosing: false,
    // Types as sent (TEI's serde does not turn 5 into "5"); ajv fills the schema defaults; `verbose` gives each
    // error its schema's description for the 422 text.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, verbose: true } },
  });

  // JSON bodies only, as TEI (axum's `Json`): fastify's text/plain parser would hand a string to the schema.
  app.removeContentTypeParser('text/plain');

  const errorShape = (request: FastifyRequest) =>
    (request.routeOptions.config as { openAi?: boolean } | undefined)?.openAi ? 'openai' : 'tei';
  const sendError = (request: FastifyRequest, reply: FastifyReply, error: ApiError) => {
    reply.code(error.statusCode).headers(error.headers);
    return reply.send(errorShape(request) === 'openai' ? openAiErrorBody(error) : teiErrorBody(error));
  };

  app.addHook('onRequest', async (request, reply) => {
    if (closing) {
      reply.header('connection', 'close');
      return sendError(request, reply, new ApiError(503, 'Unhealthy', 'the server is shutting down'));
    }
    const open = (request.routeOptions.config as { open?: boolean } | undefined)?.open;
    if (apiKey !== null && !open && !keyMatches(request.headers.authorization, apiKey)) {
      reply.header('www-authenticate', 'Bearer');
      return sendError(
        request,
        reply,
        new ApiError(401, 'Unauthorized', 'missing or wrong API key: send the header `Authorization: Bearer <key>`'),
      );
    }
  });

  // While closing, answers end their connection: a keep-alive socket would otherwise hold close() open until its
  // idle timeout.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof ClientGone) {
      reply.hijack(); // nobody to answer: the connection is gone
      return;
    }
    let api: ApiError;
    if (error instanceof ApiError) api = error;
    else if (error.validation)
      api = new ApiError(422, 'Validation', `Failed to deserialize the JSON body into the target type: ${describeValidation(error)}`);
    else if (
      error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      error instanceof SyntaxError
    ) {
      api = new ApiError(400, 'Validation', `Failed to parse the request body as JSON: ${error.message}`);
    } else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      api = new ApiError(413, 'Validation', `the request body is larger than the limit of ${limits.payloadLimit} bytes`);
    } else if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      api = new ApiError(415, 'Validation', 'Expected request with `Content-Type: application/json`');
    } else if (error.statusCode !== undefined && error.statusCode < 500) {
      api = new ApiError(error.statusCode, 'Validation', error.message);
    } else {
      // A failed batch (the worker's error) or a bug: TEI's 424 "Backend error".
      api = backend(`Backend error: ${error.message}`);
    }
    return sendError(request, reply, api);
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, new ApiError(404, 'NotFound', `no route ${request.method} ${request.url}`)),
  );

  app.get('/health', { config: { open: true } }, async (_request, reply) => {
    if (!worker.healthy) throw new ApiError(503, 'Unhealthy', 'unhealthy');
    return reply.send();
  });

  // Prometheus text, open like TEI's /metrics: TEI's names for the queue and the batches (sizes and tokens of the
  // rounds as summaries: their sum and count), ours for the inputs being computed.
  app.get('/metrics', { config: { open: true } }, async (_request, reply) => {
    const stats = batcher.stats();
    const lines = [
      '# TYPE te_queue_size gauge',
      `te_queue_size ${stats.queued}`,
      '# TYPE kotune_computing_inputs gauge',
      `kotune_computing_inputs ${stats.computing}`,
      '# TYPE te_batch_next_size summary',
      `te_batch_next_size_sum ${stats.roundInputs}`,
      `te_batch_next_size_count ${stats.rounds}`,
      '# TYPE te_batch_next_tokens summary',
      `te_batch_next_tokens_sum ${stats.roundTokens}`,
      `te_batch_next_tokens_count ${stats.rounds}`,
    ];
    return reply.type('text/plain; version=0.0.4').send(`${lines.join('\n')}\n`);
  });

  /** TEI's `Info` (router/src/lib.rs) for one model; `models` lists every served model's. */
  function info(model: LoadedModel) {
    const modelType =
      model.kind === 'reranker'
        ? {
            reranker: {
              id2label: model.id2label,
              label2id: Object.fromEntries(Object.entries(model.id2label).map(([id, label]) => [label, Number(id)])),
            },
          }
        : { embedding: { pooling: model.pooling } };
    return {
      model_id: model.path,
      model_sha: null,
      model_dtype: 'float32',
      served_model_name: model.name,
      model_type: modelType,
      max_concurrent_requests: limits.maxConcurrentRequests,
      max_input_length: model.maxInputLength,
      max_batch_tokens: limits.maxBatchTokens,
      max_batch_requests: limits.maxBatchRequests,
      max_client_batch_size: limits.maxClientBatchSize,
      auto_truncate: limits.autoTruncate,
      tokenization_workers: 1,
      version: VERSION,
      sha: null,
      docker_label: null,
    };
  }

  app.get('/info', async (request) => {
    const wanted = (request.query as { model?: string }).model;
    const model = wanted === undefined ? worker.models[0]! : worker.models.find((m) => m.name === wanted);
    if (!model)
      throw new ApiError(404, 'NotFound', `model '${wanted}' is not served; served: ${worker.models.map((m) => m.name).join(', ')}`);
    return { ...info(model), models: worker.models.map(info) };
  });

  // TEI's /rerank: the request-level checks in TEI's order (empty, model type, batch size), then each input's.
  app.post('/rerank', { schema: { body: teiRerank } }, async (request, reply) => {
    const started = performance.now();
    const body = request.body as TeiRerankBody;
    if (body.texts.length === 0) throw emptyList('texts');
    const checker = pick('reranker', body.model);
    checkBatchSize(body.texts.length);
    checkDirection(body.truncation_direction);
    const checked = checker.pairs(body.query, body.texts, body.truncate ?? limits.autoTruncate);
    const tokenized = performance.now();
    const job = await scores(checker, checked, !body.raw_scores, reply);
    if (job.outputs.some(Number.isNaN)) throw backend('score is NaN');
    setMetadataHeaders(reply, started, tokenized, checked, job);
    const ranks = job.outputs.map((score, index) => ({ index, ...(body.return_text ? { text: body.texts[index] } : {}), score }));
    // TEI: a stable ascending sort, then reversed (equal scores come out in reverse input order).
    return ranks.sort((a, b) => a.score - b.score).reverse();
  });

  app.post('/embed', { schema: { body: teiEmbed } }, async (request, reply) => {
    const started = performance.now();
    const body = request.body as TeiEmbedBody;
    const batch = Array.isArray(body.inputs);
    const texts = batch ? (body.inputs as string[]) : [body.inputs as string];
    if (batch && texts.length === 0) throw emptyList('inputs');
    const checker = pick('embedder', body.model);
    if (batch) checkBatchSize(texts.length);
    checkDirection(body.truncation_direction);
    const { vectors } = await embed(
      checker,
      texts,
      {
        truncate: body.truncate ?? limits.autoTruncate,
        promptName: body.prompt_name,
        normalize: body.normalize,
        dimensions: body.dimensions,
      },
      reply,
      started,
    );
    return vectors.map((vector) => Array.from(vector));
  });

  // TEI's OpenAI route: truncation as `--auto-truncate`, no prompt; errors as {message, code, type}.
  const openAiRoute = async (request: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now();
    const body = request.body as OpenAiEmbeddingsBody;
    const batch = Array.isArray(body.input);
    const texts = batch ? (body.input as string[]) : [body.input as string];
    if (batch && texts.length === 0) throw emptyList('inputs');
    const checker = pick('embedder', body.model);
    if (batch) checkBatchSize(texts.length);
    const { vectors, tokens } = await embed(checker, texts, { truncate: limits.autoTruncate, dimensions: body.dimensions }, reply, started);
    const encode =
      body.encoding_format === 'base64'
        ? (vector: Float32Array) => Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64')
        : (vector: Float32Array) => Array.from(vector);
    return {
      object: 'list',
      data: vectors.map((vector, index) => ({ object: 'embedding', embedding: encode(vector), index })),
      model: checker.model.name,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  };
  for (const url of ['/v1/embeddings', '/embeddings'])
    app.post(url, { schema: { body: openAiEmbeddings }, config: { openAi: true } }, openAiRoute);

  // Cohere / Jina rerank. Documents are cut to the model's length as those services do (no `truncate` field);
  // relevance scores are the sigmoid of the logits.
  app.post('/v1/rerank', { schema: { body: cohereRerank } }, async (request, reply) => {
    const started = performance.now();
    const body = request.body as CohereRerankBody;
    if (body.documents.length === 0) throw emptyList('documents');
    const checker = pick('reranker', body.model);
    checkBatchSize(body.documents.length);
    const texts = body.documents.map((document) => (typeof document === 'string' ? document : document.text));
    const checked = checker.pairs(body.query, texts, true);
    const tokenized = performance.now();
    const job = await scores(checker, checked, true, reply);
    if (job.outputs.some(Number.isNaN)) throw backend('score is NaN');
    setMetadataHeaders(reply, started, tokenized, checked, job);
    const results = job.outputs
      .map((relevance_score, index) => ({ index, relevance_score, ...(body.return_documents ? { document: { text: texts[index] } } : {}) }))
      .sort((a, b) => b.relevance_score - a.relevance_score)
      .slice(0, body.top_n ?? undefined);
    return { id: randomUUID(), model: checker.model.name, results, usage: { total_tokens: checked.tokens.reduce((a, b) => a + b, 0) } };
  });

  let closed: Promise<void> | null = null;
  return {
    models: worker.models,
    backend: worker.backend,
    async listen() {
      return app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 3000 });
    },
    close() {
      closed ??= (async () => {
        closing = true;
        const drained = batcher.drain();
        await app.close();
        await drained;
        await worker.close();
      })();
      return closed;
    },
    stats: () => batcher.stats(),
  };
}
