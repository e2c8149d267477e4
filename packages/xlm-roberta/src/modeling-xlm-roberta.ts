/**
 * XLM-RoBERTa in TensorFlow.js, laid out like Hugging Face's `modeling_xlm_roberta.py`: the same modules in
 * the same order, parameters under the checkpoint's names (`encoder.layer.0.attention.self.query.weight`),
 * Linear weights in PyTorch's `[out, in]` layout. Every Linear goes through `linear()` and both attention
 * products through `matMul()` of @kotune/engine, which carry the fast wasm kernels and their gradients.
 *
 * Math (transformers, eval and train mode alike, absolute positions only):
 *   positions  = cumsum(ids ≠ pad) · (ids ≠ pad) + pad          (RoBERTa: the first token gets pad + 1)
 *   embeddings = LayerNorm(word[ids] + token_type[0] + position[positions]);  dropout
 *   per layer (post-LN):
 *     scores = q kᵀ / √d_head + (1 − mask) · finfo(float32).min;  probs = dropout(softmax(scores))
 *     a      = LayerNorm(dropout(dense(probs v)) + x)
 *     x'     = LayerNorm(dropout(output.dense(act(intermediate.dense(a)))) + a)
 *   pooler     = tanh(pooler.dense(h[:, 0]))                                   (XLMRobertaModel only)
 *   classifier = out_proj(dropout(tanh(dense(dropout(h[:, 0])))))             (ForSequenceClassification)
 *
 * Dropout runs only when a forward is called with `training: true`, and then needs a `seed`: every dropout
 * site draws its mask from its own seed derived from it, so that the same seed gives the same masks on every
 * run and backend (the trainer replays steps bit for bit on resume).
 *
 * Memory while training: each encoder layer runs in its own `tf.tidy`, so the layer's intermediates that its
 * backward does not need are freed as soon as the layer is done, not when the whole forward ends. With
 * `gradientCheckpointing` (transformers' `gradient_checkpointing_enable()`), a layer keeps only its input: the
 * backward runs the layer's forward again (same dropout masks) and differentiates that.
 */
import {
  tf,
  dropout,
  dropoutMask,
  gelu,
  layerNorm,
  linear,
  matMul,
  mix32,
  nativeEmbeddingGrad,
  nativeEncoderLayer,
  nativeEncoderLayerTrain,
  scaledMaskedSoftmax,
  type EncoderDropoutMasks,
  type EncoderLayerWeights,
} from '@kotune/engine';
import type { LoadedTensor } from '@kotune/weights';
import { numLabels, type XLMRobertaConfig } from './configuration-xlm-roberta.ts';

// ---------------------------------------------------------------------------------------------------------
// Activations (transformers' ACT2FN, the entries that make sense in an encoder's feed-forward layer)
// ---------------------------------------------------------------------------------------------------------

type Activation = (x: tf.Tensor) => tf.Tensor;

/** `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`: gelu_new, gelu_pytorch_tanh, gelu_fast, gelu_accurate. */
const geluTanh: Activation = (x) =>
  tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));

const silu: Activation = (x) => tf.mul(x, tf.sigmoid(x));

export const ACT2FN: Record<string, Activation> = {
  // `0.5 x (1 + erf(x / √2))`, PyTorch's exact `nn.functional.gelu`; the engine's carries PyTorch's backward formula.
  gelu,
  gelu_python: gelu,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_fast: geluTanh,
  gelu_accurate: geluTanh,
  quick_gelu: (x) => tf.mul(x, tf.sigmoid(tf.mul(1.702, x))),
  relu: (x) => tf.relu(x),
  relu6: (x) => tf.relu6(x),
  leaky_relu: (x) => tf.leakyRelu(x, 0.01),
  silu,
  swish: silu,
  mish: (x) => tf.mul(x, tf.tanh(tf.softplus(x))),
  tanh: (x) => tf.tanh(x),
  sigmoid: (x) => tf.sigmoid(x),
  linear: (x) => x,
};

function activation(name: string): Activation {
  const fn = ACT2FN[name];
  if (!fn) throw new Error(`hidden_act "${name}" is not supported (supported: ${Object.keys(ACT2FN).join(', ')})`);
  return fn;
}

// ---------------------------------------------------------------------------------------------------------
// Forward context: training flag and the dropout seed stream
// ---------------------------------------------------------------------------------------------------------

export interface ForwardOptions {
  /** Dropout on (default false). */
  training?: boolean;
  /** Required when training: the dropout masks are a function of it (any 32-bit integer). */
  seed?: number;
  /**
   * Recompute each encoder layer in the backward instead of keeping its activations (default false): the
   * activations held for the backward shrink from every layer's to one layer's, for one more forward per step.
   * Values and gradients are the same (float32 rounding aside).
   */
  gradientCheckpointing?: boolean;
}

export class ForwardContext {
  readonly training: boolean;
  readonly gradientCheckpointing: boolean;
  private readonly seed: number;
  private site = 0;

  constructor(options: ForwardOptions) {
    this.training = options.training ?? false;
    this.gradientCheckpointing = options.gradientCheckpointing ?? false;
    if (this.training && !Number.isInteger(options.seed))
      throw new Error('forward: training needs an integer `seed` for reproducible dropout');
    this.seed = (options.seed ?? 0) >>> 0;
  }

  /** A context at the same point of the seed stream: the same dropout masks for a recomputed forward. */
  replay(): ForwardContext {
    const copy = new ForwardContext({ training: this.training, seed: this.seed, gradientCheckpointing: this.gradientCheckpointing });
    copy.site = this.site;
    return copy;
  }

  /** `nn.Dropout(rate)`: identity in eval mode; in training, the next site's seeded mask, scaled by 1/(1−rate). */
  dropout(x: tf.Tensor, rate: number): tf.Tensor {
    if (!this.training || rate === 0) return x;
    return dropout(x, rate, this.nextSeed());
  }

  /**
   * The masks of an encoder layer's three dropout sites (attention probabilities, attention output, feed-forward
   * output), drawn from the stream as the op-by-op layer draws them: the native training layer's dropout.
   */
  encoderLayerDropout(attentionRate: number, hiddenRate: number): EncoderDropoutMasks {
    const site = (rate: number) =>
      !this.training || rate === 0 ? { seed: 0, threshold: 0, scale: 1 } : dropoutMask(rate, this.nextSeed());
    const attention = site(attentionRate);
    const attentionOutput = site(hiddenRate);
    const output = site(hiddenRate);
    return {
      attention,
      hidden: {
        threshold: attentionOutput.threshold,
        scale: attentionOutput.scale,
        attentionOutputSeed: attentionOutput.seed,
        outputSeed: output.seed,
      },
    };
  }

  private nextSeed(): number {
    this.site += 1;
    return mix32(this.seed ^ mix32(this.site * 0x9e3779b9));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Parameters: names, shapes and initialisation in one table
// ---------------------------------------------------------------------------------------------------------

/** How transformers' `_init_weights` fills a tensor. */
type Init = 'normal' | 'normal-padding-row-zero' | 'zeros' | 'ones';

export interface ParameterSpec {
  name: string;
  shape: number[];
  init: Init;
}

/** Parameters of `XLMRobertaModel` (names without the `roberta.` prefix), in the checkpoint's order. */
export function encoderParameterSpecs(config: XLMRobertaConfig, { addPoolingLayer }: { addPoolingLayer: boolean }): ParameterSpec[] {
  const { hiddenSize: h, intermediateSize: ffn } = config;
  const specs: ParameterSpec[] = [];
  const linearSpec = (name: string, out: number, inFeatures: number) =>
    specs.push({ name: `${name}.weight`, shape: [out, inFeatures], init: 'normal' }, { name: `${name}.bias`, shape: [out], init: 'zeros' });
  const layerNormSpec = (name: string) =>
    specs.push({ name: `${name}.weight`, shape: [h], init: 'ones' }, { name: `${name}.bias`, shape: [h], init: 'zeros' });

  specs.push(
    { name: 'embeddings.word_embeddings.weight', shape: [config.vocabSize, h], init: 'normal-padding-row-zero' },
    { name: 'embeddings.position_embeddings.weight', shape: [config.maxPositionEmbeddings, h], init: 'normal-padding-row-zero' },
    { name: 'embeddings.token_type_embeddings.weight', shape: [config.typeVocabSize, h], init: 'normal' },
  );
  layerNormSpec('embeddings.LayerNorm');
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const layer = `encoder.layer.${i}`;
    for (const proj of ['query', 'key', 'value']) linearSpec(`${layer}.attention.self.${proj}`, h, h);
    linearSpec(`${layer}.attention.output.dense`, h, h);
    layerNormSpec(`${layer}.attention.output.LayerNorm`);
    linearSpec(`${layer}.intermediate.dense`, ffn, h);
    linearSpec(`${layer}.output.dense`, h, ffn);
    layerNormSpec(`${layer}.output.LayerNorm`);
  }
  if (addPoolingLayer) linearSpec('pooler.dense', h, h);
  return specs;
}

/** Parameters of `XLMRobertaClassificationHead` (under `classifier.`). */
export function classifierParameterSpecs(config: XLMRobertaConfig): ParameterSpec[] {
  const h = config.hiddenSize;
  const labels = numLabels(config);
  return [
    { name: 'classifier.dense.weight', shape: [h, h], init: 'normal' },
    { name: 'classifier.dense.bias', shape: [h], init: 'zeros' },
    { name: 'classifier.out_proj.weight', shape: [labels, h], init: 'normal' },
    { name: 'classifier.out_proj.bias', shape: [labels], init: 'zeros' },
  ];
}

/**
 * A fresh tensor as `_init_weights` makes it: normal(0, initializer_range) for Linear and Embedding weights,
 * the `padding_idx` row of the word and position embeddings zeroed, LayerNorm 1 / 0, biases 0. `seed` makes
 * it reproducible; each tensor should get its own.
 */
export function initParameter(spec: ParameterSpec, config: XLMRobertaConfig, seed: number): tf.Tensor {
  return tf.tidy(() => {
    switch (spec.init) {
      case 'zeros':
        return tf.zeros(spec.shape);
      case 'ones':
        return tf.ones(spec.shape);
      case 'normal':
        return tf.randomNormal(spec.shape, 0, config.initializerRange, 'float32', seed);
      case 'normal-padding-row-zero': {
        const keep = tf.oneHot(config.padTokenId, spec.shape[0]!).reshape([-1, 1]).sub(1).neg();
        return tf.randomNormal(spec.shape, 0, config.initializerRange, 'float32', seed).mul(keep);
      }
    }
  });
}

/** Fresh parameters for `specs`, each with its own seed derived from `seed`. */
export function initParameters(specs: ParameterSpec[], config: XLMRobertaConfig, seed: number): Map<string, tf.Variable> {
  const params = new Map<string, tf.Variable>();
  specs.forEach((spec, index) => {
    const value = initParameter(spec, config, mix32((seed >>> 0) ^ mix32(index + 1)));
    params.set(spec.name, tf.variable(value, true));
    value.dispose();
  });
  return params;
}

/**
 * Variables for `specs` from a state dict, where the tensor for spec `name` is stored under `keyOf(name)`.
 * A missing or mis-shaped tensor is an error that names its key; `source` names the weights in messages.
 */
export function parametersFromStateDict(
  specs: ParameterSpec[],
  stateDict: Map<string, LoadedTensor>,
  keyOf: (name: string) => string,
  source: string,
): Map<string, tf.Variable> {
  for (const spec of specs) {
    const key = keyOf(spec.name);
    const tensor = stateDict.get(key);
    if (!tensor) throw new Error(`${source}: missing tensor "${key}" (expected shape [${spec.shape}])`);
    if (tensor.shape.length !== spec.shape.length || tensor.shape.some((d, i) => d !== spec.shape[i])) {
      throw new Error(`${source}: tensor "${key}" has shape [${tensor.shape}], the config needs [${spec.shape}]`);
    }
    if (!(tensor.data instanceof Float32Array || tensor.data instanceof Float64Array)) {
      throw new Error(`${source}: tensor "${key}" has dtype ${tensor.dtype}, expected a float dtype`);
    }
  }
  const params = new Map<string, tf.Variable>();
  for (const spec of specs) {
    const data = stateDict.get(keyOf(spec.name))!.data as Float32Array | Float64Array;
    const value = tf.tensor(data instanceof Float32Array ? data : Float32Array.from(data), spec.shape, 'float32');
    params.set(spec.name, tf.variable(value, true));
    value.dispose();
  }
  return params;
}

/** Looks parameters up by name under a module prefix, for the module constructors below. */
class ParameterScope {
  constructor(
    private readonly params: Map<string, tf.Variable>,
    private readonly prefix = '',
  ) {}

  child(name: string): ParameterScope {
    return new ParameterScope(this.params, `${this.prefix}${name}.`);
  }

  get<T extends tf.Tensor>(name: string): T {
    const value = this.params.get(this.prefix + name);
    if (!value) throw new Error(`parameter "${this.prefix}${name}" is missing`);
    return value as unknown as T;
  }

  /** Every parameter under this scope. */
  all(): tf.Variable[] {
    return [...this.params].filter(([name]) => name.startsWith(this.prefix)).map(([, value]) => value);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------------

class Linear {
  readonly weight: tf.Tensor2D;
  readonly bias: tf.Tensor1D;

  constructor(p: ParameterScope) {
    this.weight = p.get('weight');
    this.bias = p.get('bias');
  }

  forward(x: tf.Tensor): tf.Tensor {
    return linear(x, this.weight, this.bias);
  }
}

class LayerNorm {
  private readonly weight: tf.Tensor1D;
  private readonly bias: tf.Tensor1D;

  constructor(
    p: ParameterScope,
    private readonly eps: number,
  ) {
    this.weight = p.get('weight');
    this.bias = p.get('bias');
  }

  /** `(x − mean) / √(biased variance + eps) · weight + bias` over the last axis (the engine's, with its backward formula). */
  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/**
 * `nn.Embedding(padding_idx)` lookup: the rows of `weight` for `ids`. The backward adds `dy` into a dense `[V, H]`
 * gradient (dense as PyTorch's: its AdamW updates every row anyway), on the native kernels in one pass, else with
 * ScatterNd, because tf.gather's own gradient needs UnsortedSegmentSum, which the wasm backend lacks; the
 * `paddingIdx` row gets no gradient, as in PyTorch.
 */
function embedding(weight: tf.Tensor2D, ids: tf.Tensor2D, paddingIdx: number | null): tf.Tensor3D {
  const [rows, width] = weight.shape;
  const lookup = tf.customGrad((w, save) => {
    (save as tf.GradSaveFunc)([ids]);
    return {
      value: tf.gather(w as tf.Tensor2D, ids),
      gradFunc: (dy: tf.Tensor, [savedIds]: tf.Tensor[]) => {
        const native = nativeEmbeddingGrad(savedIds!, dy, rows, paddingIdx);
        if (native) return native;
        const flatIds = tf.reshape(savedIds!, [-1, 1]);
        let updates = tf.reshape(dy, [-1, width]);
        if (paddingIdx !== null) updates = tf.mul(updates, tf.cast(tf.notEqual(flatIds, paddingIdx), 'float32'));
        return tf.scatterND(flatIds, updates, [rows, width]);
      },
    };
  });
  return lookup(weight) as tf.Tensor as tf.Tensor3D;
}

/** `create_position_ids_from_input_ids`: pads keep `padding_idx`, real tokens count on from `padding_idx + 1`. */
export function createPositionIdsFromInputIds(inputIds: tf.Tensor2D, paddingIdx: number): tf.Tensor2D {
  return tf.tidy(() => {
    const mask = tf.cast(tf.notEqual(inputIds, paddingIdx), 'int32');
    return tf.add(tf.mul(tf.cumsum(mask, 1), mask), tf.scalar(paddingIdx, 'int32')) as tf.Tensor2D;
  });
}

class XLMRobertaEmbeddings {
  private readonly wordEmbeddings: tf.Tensor2D;
  private readonly positionEmbeddings: tf.Tensor2D;
  private readonly tokenTypeEmbeddings: tf.Tensor2D;
  private readonly layerNorm: LayerNorm;

  constructor(
    private readonly config: XLMRobertaConfig,
    p: ParameterScope,
  ) {
    this.wordEmbeddings = p.get('word_embeddings.weight');
    this.positionEmbeddings = p.get('position_embeddings.weight');
    this.tokenTypeEmbeddings = p.get('token_type_embeddings.weight');
    this.layerNorm = new LayerNorm(p.child('LayerNorm'), config.layerNormEps);
  }

  forward(inputIds: tf.Tensor2D, ctx: ForwardContext): tf.Tensor3D {
    const positionIds = createPositionIdsFromInputIds(inputIds, this.config.padTokenId);
    // token_type_ids are all 0 (transformers' registered buffer): row 0, broadcast over every position.
    const tokenType = tf.slice(this.tokenTypeEmbeddings, [0, 0], [1, -1]);
    const pad = this.config.padTokenId;
    const embeddings = tf.add(
      tf.add(embedding(this.wordEmbeddings, inputIds, pad), tokenType),
      embedding(this.positionEmbeddings, positionIds, pad),
    );
    return ctx.dropout(this.layerNorm.forward(embeddings), this.config.hiddenDropoutProb) as tf.Tensor3D;
  }
}

class XLMRobertaSelfAttention {
  private readonly query: Linear;
  private readonly key: Linear;
  private readonly value: Linear;
  private readonly numHeads: number;
  private readonly headSize: number;

  constructor(
    private readonly config: XLMRobertaConfig,
    p: ParameterScope,
  ) {
    this.query = new Linear(p.child('query'));
    this.key = new Linear(p.child('key'));
    this.value = new Linear(p.child('value'));
    this.numHeads = config.numAttentionHeads;
    this.headSize = config.hiddenSize / config.numAttentionHeads;
  }

  /** `[B, S, H]` → `[B, heads, S, d_head]` (transformers' `transpose_for_scores`). */
  private transposeForScores(x: tf.Tensor): tf.Tensor4D {
    const [batch, seq] = x.shape as [number, number, number];
    return tf.transpose(tf.reshape(x, [batch, seq, this.numHeads, this.headSize]), [0, 2, 1, 3]);
  }

  forward(hidden: tf.Tensor3D, extendedMask: tf.Tensor4D, ctx: ForwardContext): tf.Tensor3D {
    const [batch, seq, width] = hidden.shape;
    const query = this.transposeForScores(this.query.forward(hidden));
    const key = this.transposeForScores(this.key.forward(hidden));
    const value = this.transposeForScores(this.value.forward(hidden));
    // softmax(q kᵀ / √d_head + mask), as one op that keeps only the probabilities for the backward.
    const probs = ctx.dropout(
      scaledMaskedSoftmax(matMul(query, key, false, true), Math.sqrt(this.headSize), extendedMask),
      this.config.attentionProbsDropoutProb,
    );
    const context = tf.transpose(matMul(probs, value), [0, 2, 1, 3]);
    return tf.reshape(context, [batch, seq, width]);
  }
}

/** Output projection of attention or feed-forward, then the residual and post-LN. */
class XLMRobertaResidualOutput {
  private readonly dense: Linear;
  private readonly layerNorm: LayerNorm;

  constructor(
    private readonly config: XLMRobertaConfig,
    p: ParameterScope,
  ) {
    this.dense = new Linear(p.child('dense'));
    this.layerNorm = new LayerNorm(p.child('LayerNorm'), config.layerNormEps);
  }

  forward(hidden: tf.Tensor, residual: tf.Tensor3D, ctx: ForwardContext): tf.Tensor3D {
    const projected = ctx.dropout(this.dense.forward(hidden), this.config.hiddenDropoutProb);
    return this.layerNorm.forward(tf.add(projected, residual)) as tf.Tensor3D;
  }
}

class XLMRobertaAttention {
  private readonly self: XLMRobertaSelfAttention;
  private readonly output: XLMRobertaResidualOutput;

  constructor(config: XLMRobertaConfig, p: ParameterScope) {
    this.self = new XLMRobertaSelfAttention(config, p.child('self'));
    this.output = new XLMRobertaResidualOutput(config, p.child('output'));
  }

  forward(hidden: tf.Tensor3D, extendedMask: tf.Tensor4D, ctx: ForwardContext): tf.Tensor3D {
    return this.output.forward(this.self.forward(hidden, extendedMask, ctx), hidden, ctx);
  }
}

class XLMRobertaIntermediate {
  private readonly dense: Linear;
  private readonly act: Activation;

  constructor(config: XLMRobertaConfig, p: ParameterScope) {
    this.dense = new Linear(p.child('dense'));
    this.act = activation(config.hiddenAct);
  }

  forward(hidden: tf.Tensor3D): tf.Tensor {
    return this.act(this.dense.forward(hidden));
  }
}

/** The layer's tensors in the order @kotune/engine's native encoder layer takes them. */
const NATIVE_LAYER_TENSORS = [
  'attention.self.query',
  'attention.self.key',
  'attention.self.value',
  'attention.output.dense',
  'attention.output.LayerNorm',
  'intermediate.dense',
  'output.dense',
  'output.LayerNorm',
].flatMap((module) => [`${module}.weight`, `${module}.bias`]);

class XLMRobertaLayer {
  private readonly attention: XLMRobertaAttention;
  private readonly intermediate: XLMRobertaIntermediate;
  private readonly output: XLMRobertaResidualOutput;
  private readonly parameters: tf.Variable[];
  /** For the native whole-layer forward: its tensors, or undefined where it computes something else (another activation). */
  private readonly nativeWeights?: EncoderLayerWeights;

  constructor(
    private readonly config: XLMRobertaConfig,
    p: ParameterScope,
  ) {
    this.attention = new XLMRobertaAttention(config, p.child('attention'));
    this.intermediate = new XLMRobertaIntermediate(config, p.child('intermediate'));
    this.output = new XLMRobertaResidualOutput(config, p.child('output'));
    this.parameters = p.all();
    if (ACT2FN[config.hiddenAct] === gelu) this.nativeWeights = NATIVE_LAYER_TENSORS.map((name) => p.get(name));
  }

  /**
   * The layer in a tidy of its own: what its backward does not need is freed when the layer ends. Where
   * @kotune/engine can, the whole layer runs natively instead, the same math in one call: in training with its
   * backward (dropout from the same seed stream), at inference without.
   */
  forward(hidden: tf.Tensor3D, extendedMask: tf.Tensor4D, ctx: ForwardContext): tf.Tensor3D {
    if (ctx.training && this.nativeWeights) {
      // The same layer in one native call each way; with checkpointing it keeps only its input and recomputes.
      const { attentionProbsDropoutProb, hiddenDropoutProb } = this.config;
      const native = nativeEncoderLayerTrain(
        hidden,
        extendedMask,
        this.nativeWeights,
        this.config.numAttentionHeads,
        this.config.layerNormEps,
        () => ctx.encoderLayerDropout(attentionProbsDropoutProb, hiddenDropoutProb),
        ctx.gradientCheckpointing,
      );
      if (native) return native as tf.Tensor3D;
    }
    if (ctx.gradientCheckpointing && ctx.training) return this.checkpointed(hidden, extendedMask, ctx);
    if (!ctx.training && this.nativeWeights) {
      const native = nativeEncoderLayer(hidden, extendedMask, this.nativeWeights, this.config.numAttentionHeads, this.config.layerNormEps);
      if (native) return native as tf.Tensor3D;
    }
    return tf.tidy(() => this.compute(hidden, extendedMask, ctx));
  }

  private compute(hidden: tf.Tensor3D, extendedMask: tf.Tensor4D, ctx: ForwardContext): tf.Tensor3D {
    const attentionOutput = this.attention.forward(hidden, extendedMask, ctx);
    return this.output.forward(this.intermediate.forward(attentionOutput), attentionOutput, ctx);
  }

  /**
   * Gradient checkpointing (`torch.utils.checkpoint`): the forward runs inside a custom-gradient op, where
   * tf.js records nothing, and keeps only the layer's input and the mask. The backward runs the layer again
   * from a replay of the dropout seed stream (the same masks, so the same values) and differentiates that
   * with `tf.grads`. The layer's weights are the op's inputs too, so that their gradients flow out of it.
   */
  private checkpointed(hidden: tf.Tensor3D, extendedMask: tf.Tensor4D, ctx: ForwardContext): tf.Tensor3D {
    const replay = ctx.replay();
    const op = tf.customGrad((...args) => {
      const save = args.pop() as tf.GradSaveFunc;
      save([args[0] as tf.Tensor, extendedMask]);
      return {
        value: this.compute(args[0] as tf.Tensor3D, extendedMask, ctx),
        gradFunc: (dy: tf.Tensor, [savedHidden, savedMask]: tf.Tensor[]) =>
          withOwnTape(() =>
            tf.grads((h: tf.Tensor) => this.compute(h as tf.Tensor3D, savedMask as tf.Tensor4D, replay.replay()))(
              [savedHidden!, ...this.parameters],
              dy,
            ),
          ),
      };
    });
    return op(hidden, ...this.parameters) as tf.Tensor3D;
  }
}

/**
 * Runs `f`, which computes gradients, from inside a backward pass. tf.js keeps one active tape: a gradient
 * computation started at depth 0 replaces it and sets it to null when done, which would leave the outer
 * backward without the tape whose saved tensors it frees at the end. The outer tape is put back afterwards.
 */
function withOwnTape<T>(f: () => T): T {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  try {
    return f();
  } finally {
    state.activeTape = outer;
  }
}

class XLMRobertaPooler {
  private readonly dense: Linear;

  constructor(p: ParameterScope) {
    this.dense = new Linear(p.child('dense'));
  }

  forward(hidden: tf.Tensor3D): tf.Tensor2D {
    return tf.tanh(this.dense.forward(firstToken(hidden))) as tf.Tensor2D;
  }
}

/** `h[:, 0]`: the `<s>` token's state, `[B, H]`. */
export function firstToken(hidden: tf.Tensor3D): tf.Tensor2D {
  const [batch, , width] = hidden.shape;
  return tf.reshape(tf.slice(hidden, [0, 0, 0], [batch, 1, width]), [batch, width]);
}

/** `(1 − mask[:, None, None, :]) · finfo(float32).min`, added to the attention scores. */
function extendedAttentionMask(attentionMask: tf.Tensor2D): tf.Tensor4D {
  const [batch, seq] = attentionMask.shape;
  const mask = tf.reshape(tf.cast(attentionMask, 'float32'), [batch, 1, 1, seq]);
  return tf.mul(tf.sub(1, mask), FLOAT32_MIN);
}

const FLOAT32_MIN = -3.4028234663852886e38;

// ---------------------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------------------

export interface ModelOutput {
  lastHiddenState: tf.Tensor3D;
  /** `tanh(pooler.dense(h[:, 0]))`, when the model has a pooler. */
  poolerOutput?: tf.Tensor2D;
  /** With `outputHiddenStates`: the embedding output, then each layer's output (`num_hidden_layers + 1`). */
  hiddenStates?: tf.Tensor3D[];
}

/**
 * `XLMRobertaModel`: embeddings, encoder and (optionally) the pooler. `params` maps checkpoint names
 * without the `roberta.` prefix to variables; the model reads them, the caller owns them.
 */
export class XLMRobertaModel {
  readonly config: XLMRobertaConfig;
  readonly hasPooler: boolean;
  private readonly embeddings: XLMRobertaEmbeddings;
  private readonly layers: XLMRobertaLayer[];
  private readonly pooler?: XLMRobertaPooler;

  constructor(config: XLMRobertaConfig, params: Map<string, tf.Variable>) {
    this.config = config;
    const p = new ParameterScope(params);
    this.embeddings = new XLMRobertaEmbeddings(config, p.child('embeddings'));
    const encoder = p.child('encoder').child('layer');
    this.layers = Array.from({ length: config.numHiddenLayers }, (_, i) => new XLMRobertaLayer(config, encoder.child(String(i))));
    this.hasPooler = params.has('pooler.dense.weight');
    if (this.hasPooler) this.pooler = new XLMRobertaPooler(p.child('pooler'));
  }

  /** Longest input the position table allows: positions run from `pad + 1` to `max_position_embeddings − 1`. */
  get maxSequenceLength(): number {
    return this.config.maxPositionEmbeddings - this.config.padTokenId - 1;
  }

  /** `inputIds` and `attentionMask` are `[B, S]` (int32; the mask may be float). */
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options: ForwardOptions & { outputHiddenStates?: boolean } = {}): ModelOutput {
    checkInputs(inputIds, attentionMask, this.maxSequenceLength);
    const ctx = new ForwardContext(options);
    return tf.tidy(
      () => this.run(inputIds, attentionMask, ctx, options.outputHiddenStates ?? false) as unknown as tf.TensorContainer,
    ) as unknown as ModelOutput;
  }

  /** The forward pass within a caller's context (a head continues the same dropout seed stream). */
  run(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, ctx: ForwardContext, outputHiddenStates: boolean): ModelOutput {
    const extendedMask = extendedAttentionMask(attentionMask);
    let hidden = this.embeddings.forward(tf.cast(inputIds, 'int32'), ctx);
    const hiddenStates = outputHiddenStates ? [hidden] : undefined;
    for (const layer of this.layers) {
      hidden = layer.forward(hidden, extendedMask, ctx);
      hiddenStates?.push(hidden);
    }
    const output: ModelOutput = { lastHiddenState: hidden };
    if (this.pooler) output.poolerOutput = this.pooler.forward(hidden);
    if (hiddenStates) output.hiddenStates = hiddenStates;
    return output;
  }
}

function checkInputs(inputIds: tf.Tensor, attentionMask: tf.Tensor, maxLength: number): void {
  if (inputIds.rank !== 2) throw new Error(`forward: inputIds must be [batch, seq], got [${inputIds.shape}]`);
  if (attentionMask.rank !== 2 || attentionMask.shape[0] !== inputIds.shape[0] || attentionMask.shape[1] !== inputIds.shape[1]) {
    throw new Error(`forward: attentionMask [${attentionMask.shape}] does not match inputIds [${inputIds.shape}]`);
  }
  if (inputIds.shape[1]! > maxLength) {
    throw new Error(
      `forward: sequences of ${inputIds.shape[1]} tokens exceed the model's ${maxLength} positions (max_position_embeddings − pad_token_id − 1)`,
    );
  }
}

class XLMRobertaClassificationHead {
  private readonly dense: Linear;
  private readonly outProj: Linear;
  private readonly dropoutRate: number;

  constructor(config: XLMRobertaConfig, p: ParameterScope) {
    this.dense = new Linear(p.child('dense'));
    this.outProj = new Linear(p.child('out_proj'));
    this.dropoutRate = config.classifierDropout ?? config.hiddenDropoutProb;
  }

  forward(hidden: tf.Tensor3D, ctx: ForwardContext): tf.Tensor2D {
    const x = ctx.dropout(firstToken(hidden), this.dropoutRate);
    const activated = ctx.dropout(tf.tanh(this.dense.forward(x)), this.dropoutRate);
    return this.outProj.forward(activated) as tf.Tensor2D;
  }
}

/**
 * `XLMRobertaForSequenceClassification`: the encoder without pooler, and the classification head on `<s>`.
 * `params` uses the checkpoint's names: `roberta.*` and `classifier.*`.
 */
export class XLMRobertaForSequenceClassification {
  readonly config: XLMRobertaConfig;
  readonly roberta: XLMRobertaModel;
  private readonly classifier: XLMRobertaClassificationHead;

  constructor(config: XLMRobertaConfig, params: Map<string, tf.Variable>) {
    this.config = config;
    const encoderParams = new Map<string, tf.Variable>();
    for (const [name, value] of params) if (name.startsWith('roberta.')) encoderParams.set(name.slice('roberta.'.length), value);
    this.roberta = new XLMRobertaModel(config, encoderParams);
    this.classifier = new XLMRobertaClassificationHead(config, new ParameterScope(params).child('classifier'));
  }

  /** Logits `[B, num_labels]`. */
  forward(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor2D {
    checkInputs(inputIds, attentionMask, this.roberta.maxSequenceLength);
    const ctx = new ForwardContext(options);
    return tf.tidy(() => this.classifier.forward(this.roberta.run(inputIds, attentionMask, ctx, false).lastHiddenState, ctx));
  }
}
