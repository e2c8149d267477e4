/**
 * How much memory a run of an XLM-R-shaped encoder needs, and whether the wasm backend can hold it.
 *
 * Why: tfjs-backend-wasm keeps every tensor in one WebAssembly memory of at most 4 GiB (32-bit addresses), the
 * cpu backend in ordinary JavaScript memory with no such cap. XLM-R base training holds weights + gradients +
 * AdamW's two moments = 16 bytes × 278M parameters = 4.45 GB before a single activation: on wasm it dies with
 * an out-of-memory abort after minutes of loading. `initBackend` / `ensureBackend` take the estimate from here
 * and move such a run to `cpu`, saying so in one line; a run that names `--backend wasm` gets a clear error.
 *
 * The estimate, in float32 (4 bytes) counts, with T tokens in a forward (sequences × length), S the length,
 * h hidden, f the FFN width, H heads, L layers, P parameters:
 *   training  = 4P weights + 4P gradients + 8P AdamW moments
 *             + activations kept for the backward, L × (T·(12h + 3f) + 2·H·S·T)
 *               (q, k, v, context, the attention output and its LayerNorm, the FFN's input, GELU input and
 *               output, the output and its LayerNorm, the dropout outputs; attention probabilities and their
 *               dropout, H·S a token); with gradient checkpointing only each layer's input (T·h) is kept,
 *               plus one layer's full set while it is recomputed
 *             + one layer's set again as the backward's temporaries
 *   inference = 4P weights + one layer's temporaries, T·(6h + 2f) + 2·H·S·T (nothing is kept across layers)
 * Upper bounds in spirit: lengths are the configured maxima (batches are padded to their longest input only).
 */

/** The sizes of an XLM-RoBERTa encoder (config.json's fields) that its memory depends on. */
export interface EncoderShape {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
}

/** One forward's inputs: how many sequences (pairs or texts) at most how many tokens. */
export interface ForwardShape {
  sequences: number;
  length: number;
}

export interface TrainingWorkload {
  /** The largest forward of a micro-batch (or of a GradCache mini-batch). */
  forward: ForwardShape;
  gradientCheckpointing?: boolean;
}

/** Bytes by what holds them, and their sum. */
export interface MemoryEstimate {
  /** What runs, for messages: `training XLM-R (560M parameters, 24 × 1024) on 8 × 512 tokens`. */
  what: string;
  parts: Record<string, number>;
  total: number;
}

/** The largest memory tfjs-backend-wasm can address: 2³² bytes. */
export const WASM_MEMORY_BYTES = 2 ** 32;

/**
 * What a run may plan to use of wasm's 4 GiB: 7/8 of it. The rest is tfjs's and XNNPACK's own (scratch
 * buffers, packed operands) and the fragmentation a long run's allocations leave; a plan closer to 4 GiB dies
 * with an abort partway instead of not starting.
 */
export const WASM_PLANNED_BYTES = (WASM_MEMORY_BYTES * 7) / 8;

const FLOAT = 4;

/** Parameters of the encoder with its embeddings (word, position, token type, LayerNorm) and a pooler or classifier head (h² + h). */
export function encoderParameterCount(shape: EncoderShape): number {
  const h = shape.hiddenSize;
  const f = shape.intermediateSize;
  const embeddings = (shape.vocabSize + shape.maxPositionEmbeddings + shape.typeVocabSize) * h + 2 * h;
  // q, k, v and the attention output (h² + h each), two LayerNorms (2h each), the FFN in (h·f + f) and out (f·h + h).
  const layer = 4 * (h * h + h) + 4 * h + h * f + f + f * h + h;
  const head = h * h + h;
  return embeddings + shape.numHiddenLayers * layer + head;
}

function describe(shape: EncoderShape, doing: string, forward: ForwardShape): string {
  const millions = Math.round(encoderParameterCount(shape) / 1e6);
  return `${doing} a ${millions}M-parameter encoder (${shape.numHiddenLayers} × ${shape.hiddenSize}) on ${forward.sequences} × ${forward.length} tokens`;
}

/** Floats one layer keeps for the backward, and as many again for its temporaries (see the file's comment). */
function layerActivationFloats(shape: EncoderShape, { sequences, length }: ForwardShape): number {
  const tokens = sequences * length;
  return tokens * (12 * shape.hiddenSize + 3 * shape.intermediateSize) + 2 * shape.numAttentionHeads * length * tokens;
}

export function trainingMemory(shape: EncoderShape, workload: TrainingWorkload): MemoryEstimate {
  const p = encoderParameterCount(shape) * FLOAT;
  const layer = layerActivationFloats(shape, workload.forward) * FLOAT;
  const kept = workload.gradientCheckpointing
    ? shape.numHiddenLayers * workload.forward.sequences * workload.forward.length * shape.hiddenSize * FLOAT + layer
    : shape.numHiddenLayers * layer;
  const parts = { weights: p, gradients: p, 'AdamW moments': 2 * p, activations: kept + layer };
  return { what: describe(shape, 'training', workload.forward), parts, total: sum(parts) };
}

export function inferenceMemory(shape: EncoderShape, forward: ForwardShape): MemoryEstimate {
  const tokens = forward.sequences * forward.length;
  const temporaries =
    (tokens * (6 * shape.hiddenSize + 2 * shape.intermediateSize) + 2 * shape.numAttentionHeads * forward.length * tokens) * FLOAT;
  const parts = { weights: encoderParameterCount(shape) * FLOAT, activations: temporaries };
  return { what: describe(shape, 'running', forward), parts, total: sum(parts) };
}

function sum(parts: Record<string, number>): number {
  return Object.values(parts).reduce((a, b) => a + b, 0);
}

export const gigabytes = (bytes: number): string => `${(bytes / 1e9).toFixed(bytes < 1e9 ? 2 : 1)} GB`;

/** `training ... needs about 9.7 GB (weights 2.2 GB + gradients 2.2 GB + ...)`. */
export function formatEstimate(estimate: MemoryEstimate): string {
  const parts = Object.entries(estimate.parts)
    .map(([name, bytes]) => `${name} ${gigabytes(bytes)}`)
    .join(' + ');
  return `${estimate.what} needs about ${gigabytes(estimate.total)} (${parts})`;
}

/** Whether the wasm backend can hold a run of this estimate (within `WASM_PLANNED_BYTES`). */
export function fitsWasm(estimate: MemoryEstimate): boolean {
  return estimate.total <= WASM_PLANNED_BYTES;
}
