/**
 * XLM-RoBERTa as an ONNX graph: the math of `modeling_xlm_roberta.py` in eval mode, op for op as
 * @kotune/xlm-roberta's `modeling-xlm-roberta.ts` computes it (its header has the formulas):
 *
 *   positions  = cumsum(ids ≠ pad) · (ids ≠ pad) + pad           (from the ids, not the attention mask)
 *   embeddings = LayerNorm((word[ids] + token_type[0]) + position[positions])
 *   per layer (post-LN):
 *     scores = (q kᵀ) / √d_head + (1 − mask) · finfo(float32).min;  probs = softmax(scores)
 *     a      = LayerNorm(dense(probs v) + x)
 *     x'     = LayerNorm(output.dense(gelu(intermediate.dense(a))) + a),  gelu(x) = x · 0.5 · (1 + erf(x / √2))
 *   reranker   logits = out_proj(tanh(dense(h[:, 0])))        [batch_size, num_labels]
 *   embedder   last_hidden_state = h                          [batch_size, sequence_length, hidden_size]
 *
 * Inputs `input_ids` and `attention_mask` are int64 `[batch_size, sequence_length]`. The ops are laid out as
 * PyTorch's ONNX export of BERT-like models (opset 12) lays them out, because those are the shapes
 * onnxruntime's graph fusions match: Linear as MatMul + Add with the weight stored transposed; heads split by
 * Reshape (0, 0, heads, d_head) + Transpose, kᵀ by Transpose (0, 2, 3, 1); Div by √d_head; the mask as
 * Unsqueeze (axes 1) → Unsqueeze (axes 2) → Cast → Sub → Mul, added before Softmax (axis 3); GELU as
 * Div → Erf → Add → Mul → Mul; LayerNorm as ReduceMean → Sub → Pow → ReduceMean → Add → Sqrt → Div → Mul → Add
 * after the residual Add. onnxruntime turns them into Attention, SkipLayerNormalization and BiasGelu (tested).
 */
import type { XLMRobertaConfig } from '@kotune/xlm-roberta';
import { DataType, GraphBuilder, int, ints } from './graph-builder.ts';

/** `torch.finfo(torch.float32).min`, the additive mask of transformers' `get_extended_attention_mask`. */
const FLOAT32_MIN = -3.4028234663852886e38;

export type XLMRobertaTask = 'reranker' | 'embedder';

/** A checkpoint tensor: float32 data, row-major, and its shape. */
export interface Weight {
  data: Float32Array;
  shape: number[];
}

/** The input and output names, as transformers.js and optimum name them. */
export const INPUT_NAMES = ['input_ids', 'attention_mask'] as const;
export const OUTPUT_NAME: Record<XLMRobertaTask, string> = { reranker: 'logits', embedder: 'last_hidden_state' };

/** `[out, in]` (PyTorch's Linear layout) → `[in, out]`, the right-hand side of `x · W`. */
function transposed({ data, shape }: Weight): Float32Array {
  const [rows, cols] = shape as [number, number];
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/**
 * Builds the graph of a reranker (`XLMRobertaForSequenceClassification`) or an embedder (`XLMRobertaModel`).
 * `weight(name)` returns a tensor under its checkpoint name (`roberta.`-prefixed for a reranker).
 */
export function buildXLMRobertaGraph(config: XLMRobertaConfig, task: XLMRobertaTask, weight: (name: string) => Weight): GraphBuilder {
  if (config.hiddenAct !== 'gelu' && config.hiddenAct !== 'gelu_python') {
    throw new Error(
      `ONNX export: hidden_act "${config.hiddenAct}" is not supported (supported: gelu, gelu_python, the exact erf GELU of XLM-RoBERTa)`,
    );
  }
  const g = new GraphBuilder();
  const prefix = task === 'reranker' ? 'roberta.' : '';
  const hidden = config.hiddenSize;
  const heads = config.numAttentionHeads;
  const headSize = hidden / heads;

  const param = (name: string) => {
    const w = weight(name);
    return g.initializer(name, w.data, w.shape);
  };
  /** `nn.Linear`: `x · Wᵀ + b`, with `Wᵀ` stored as the initializer `<name>.weight.T`. */
  const linear = (module: string, x: string, outputName?: string) => {
    const w = weight(`${module}.weight`);
    const wT = g.initializer(`${module}.weight.T`, transposed(w), [w.shape[1]!, w.shape[0]!]);
    return g.node('Add', `${module}/Add`, [g.node('MatMul', `${module}/MatMul`, [x, wT]), param(`${module}.bias`)], {}, outputName);
  };
  /** `(x − mean) / √(biased variance + eps) · weight + bias`, as PyTorch exports LayerNorm below opset 17. */
  const two = g.floats('const.two', [2]);
  const eps = g.floats('const.layer_norm_eps', [config.layerNormEps]);
  const layerNorm = (module: string, x: string, outputName?: string) => {
    const mean = g.node('ReduceMean', `${module}/ReduceMean`, [x], { axes: ints([-1]), keepdims: int(1) });
    const centred = g.node('Sub', `${module}/Sub`, [x, mean]);
    const variance = g.node('ReduceMean', `${module}/ReduceMean_1`, [g.node('Pow', `${module}/Pow`, [centred, two])], {
      axes: ints([-1]),
      keepdims: int(1),
    });
    const normed = g.node('Div', `${module}/Div`, [
      centred,
      g.node('Sqrt', `${module}/Sqrt`, [g.node('Add', `${module}/Add`, [variance, eps])]),
    ]);
    return g.node(
      'Add',
      `${module}/Add_1`,
      [g.node('Mul', `${module}/Mul`, [normed, param(`${module}.weight`)]), param(`${module}.bias`)],
      {},
      outputName,
    );
  };

  const inputIds = g.input('input_ids', DataType.INT64, ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', DataType.INT64, ['batch_size', 'sequence_length']);

  // Shared constants.
  const one = g.floats('const.one', [1]);
  const half = g.floats('const.half', [0.5]);
  const sqrt2 = g.floats('const.sqrt2', [Math.SQRT2]);
  const sqrtHeadSize = g.floats('const.sqrt_head_size', [Math.sqrt(headSize)]);
  const splitHeads = g.int64s('const.split_heads_shape', [0, 0, heads, headSize]);
  const mergeHeads = g.int64s('const.merge_heads_shape', [0, 0, hidden]);

  // create_position_ids_from_input_ids
  const pad = config.padTokenId;
  const isToken = g.node(
    'Cast',
    'position_ids/Cast',
    [g.node('Not', 'position_ids/Not', [g.node('Equal', 'position_ids/Equal', [inputIds, g.int64s('const.pad', [pad], [])])])],
    { to: int(DataType.INT64) },
  );
  const counted = g.node('CumSum', 'position_ids/CumSum', [isToken, g.int64s('const.sequence_axis', [1], [])]);
  const positionIds = g.node('Add', 'position_ids/Add', [
    g.node('Mul', 'position_ids/Mul', [counted, isToken]),
    g.int64s('const.pad_offset', [pad], []),
  ]);

  // XLMRobertaEmbeddings: token_type_ids are all 0, so row 0 of the table is added at every position.
  const emb = `${prefix}embeddings`;
  const words = g.node('Gather', `${emb}.word_embeddings/Gather`, [param(`${emb}.word_embeddings.weight`), inputIds], { axis: int(0) });
  const tokenType = g.node(
    'Gather',
    `${emb}.token_type_embeddings/Gather`,
    [param(`${emb}.token_type_embeddings.weight`), g.int64s('const.token_type_id', [0], [])],
    { axis: int(0) },
  );
  const positions = g.node('Gather', `${emb}.position_embeddings/Gather`, [param(`${emb}.position_embeddings.weight`), positionIds], {
    axis: int(0),
  });
  const summed = g.node('Add', `${emb}/Add_1`, [g.node('Add', `${emb}/Add`, [words, tokenType]), positions]);
  let x = layerNorm(`${emb}.LayerNorm`, summed);

  // get_extended_attention_mask: [batch, 1, 1, sequence], 0 for tokens and finfo.min for padding.
  const mask4d = g.node(
    'Unsqueeze',
    'extended_attention_mask/Unsqueeze_1',
    [g.node('Unsqueeze', 'extended_attention_mask/Unsqueeze', [attentionMask], { axes: ints([1]) })],
    { axes: ints([2]) },
  );
  const maskFloat = g.node('Cast', 'extended_attention_mask/Cast', [mask4d], { to: int(DataType.FLOAT) });
  const extendedMask = g.node('Mul', 'extended_attention_mask/Mul', [
    g.node('Sub', 'extended_attention_mask/Sub', [one, maskFloat]),
    g.floats('const.float32_min', [FLOAT32_MIN]),
  ]);

  for (let i = 0; i < config.numHiddenLayers; i++) {
    const layer = `${prefix}encoder.layer.${i}`;
    const att = `${layer}.attention.self`;
    const heads4d = (proj: string, perm: number[]) =>
      g.node(
        'Transpose',
        `${att}.${proj}/Transpose`,
        [g.node('Reshape', `${att}.${proj}/Reshape`, [linear(`${att}.${proj}`, x), splitHeads])],
        { perm: ints(perm) },
      );
    const query = heads4d('query', [0, 2, 1, 3]);
    const keyT = heads4d('key', [0, 2, 3, 1]);
    const value = heads4d('value', [0, 2, 1, 3]);
    const scores = g.node('Div', `${att}/Div`, [g.node('MatMul', `${att}/MatMul`, [query, keyT]), sqrtHeadSize]);
    const probs = g.node('Softmax', `${att}/Softmax`, [g.node('Add', `${att}/Add`, [scores, extendedMask])], { axis: int(3) });
    const context = g.node('Transpose', `${att}/Transpose`, [g.node('MatMul', `${att}/MatMul_1`, [probs, value])], {
      perm: ints([0, 2, 1, 3]),
    });
    const merged = g.node('Reshape', `${att}/Reshape`, [context, mergeHeads]);
    const attOut = `${layer}.attention.output`;
    const a = layerNorm(`${attOut}.LayerNorm`, g.node('Add', `${attOut}/Add`, [linear(`${attOut}.dense`, merged), x]));

    const inter = linear(`${layer}.intermediate.dense`, a);
    const act = `${layer}.intermediate.intermediate_act_fn`;
    const erf = g.node('Erf', `${act}/Erf`, [g.node('Div', `${act}/Div`, [inter, sqrt2])]);
    const gelu = g.node('Mul', `${act}/Mul_1`, [g.node('Mul', `${act}/Mul`, [inter, g.node('Add', `${act}/Add`, [erf, one])]), half]);
    const out = `${layer}.output`;
    const isLast = i === config.numHiddenLayers - 1;
    x = layerNorm(
      `${out}.LayerNorm`,
      g.node('Add', `${out}/Add`, [linear(`${out}.dense`, gelu), a]),
      task === 'embedder' && isLast ? OUTPUT_NAME.embedder : undefined,
    );
  }

  if (task === 'embedder') {
    g.output(x, DataType.FLOAT, ['batch_size', 'sequence_length', hidden]);
  } else {
    // XLMRobertaClassificationHead on the <s> token.
    const first = g.node('Gather', 'classifier/Gather', [x, g.int64s('const.first_token', [0], [])], { axis: int(1) });
    const dense = g.node('Tanh', 'classifier.dense/Tanh', [linear('classifier.dense', first)]);
    const logits = linear('classifier.out_proj', dense, OUTPUT_NAME.reranker);
    g.output(logits, DataType.FLOAT, ['batch_size', weight('classifier.out_proj.bias').shape[0]!]);
  }
  return g;
}
