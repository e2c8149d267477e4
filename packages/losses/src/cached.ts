/**
 * GradCache: contrastive losses over a large batch with the activation memory of one mini-batch.
 * Gao et al. 2021, *Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup*
 * (https://arxiv.org/abs/2101.06983); sentence-transformers' `CachedMultipleNegativesRankingLoss`
 * (sentence_transformers/losses/CachedMultipleNegativesRankingLoss.py).
 *
 * The loss L(E) depends on the parameters θ only through the embeddings E = f_θ(texts), so
 *   ∂L/∂θ = Σ_chunks ∂/∂θ ⟨stopgrad(∂L/∂E_chunk), f_θ(chunk)⟩.
 *   1. embed every mini-batch without recording a tape (no activations kept);
 *   2. compute L and G = ∂L/∂E on the cached embeddings (cheap: B × H);
 *   3. re-embed each mini-batch under a tape and accumulate the parameter gradients of ⟨G_chunk, E_chunk⟩.
 * Step 3 must reproduce step 1 exactly: `embed` has to be a deterministic function of its chunk (with
 * dropout on, the chunk carries its dropout seed, as sentence-transformers' `RandContext` replays
 * the RNG state). The gradients then equal the plain loss's up to float32 summation order.
 */
import { addInto, tf } from '@kotune/engine';
import { infoNceLoss, type InfoNceOptions } from './infonce.ts';
import {
  multipleNegativesRankingLoss,
  multipleNegativesSymmetricRankingLoss,
  type MultipleNegativesRankingOptions,
} from './multiple-negatives-ranking.ts';

/** Embeds one mini-batch `[n, H]`; called twice per chunk and must give the same result both times. */
export type EmbedChunk<Chunk> = (chunk: Chunk) => tf.Tensor2D;

export interface GradCacheResult {
  loss: number;
  /** Parameter gradients keyed like the `params` map; parameters the loss does not reach are absent. */
  grads: Map<string, tf.Tensor>;
}

/**
 * Runs the three GradCache passes. `columns[c]` lists column c's mini-batches in order; the loss
 * receives each column's embeddings concatenated (`[rows(c), H]`).
 */
export function gradCache<Chunk>(
  columns: readonly (readonly Chunk[])[],
  embed: EmbedChunk<Chunk>,
  loss: (embeddings: tf.Tensor2D[]) => tf.Scalar,
  params: Map<string, tf.Variable>,
): GradCacheResult {
  if (columns.length === 0 || columns.some((c) => c.length === 0)) throw new Error('gradCache: every column needs at least one mini-batch');
  const cached = columns.map((chunks) => chunks.map((chunk) => tf.tidy(() => embed(chunk))));
  const sizes = cached.map((chunks) => chunks.map((e) => e.shape[0]));
  let full: tf.Tensor2D[] = [];
  let value: number;
  let embeddingGrads: tf.Tensor[];
  try {
    full = cached.map((chunks) => (chunks.length === 1 ? chunks[0]!.clone() : tf.concat(chunks, 0)));
    const out = tf.valueAndGrads((...e: tf.Tensor[]) => loss(e as tf.Tensor2D[]))(full);
    value = out.value.dataSync()[0]!;
    out.value.dispose();
    embeddingGrads = out.grads;
  } finally {
    tf.dispose([...cached.flat(), ...full]);
  }

  const names = new Map([...params].map(([name, v]) => [v.name, name]));
  const varList = [...params.values()];
  const grads = new Map<string, tf.Tensor>();
  try {
    columns.forEach((chunks, c) => {
      const pieces = tf.split(embeddingGrads[c]!, sizes[c]!, 0);
      chunks.forEach((chunk, i) => {
        const upstream = pieces[i]!;
        const { value: surrogate, grads: chunkGrads } = tf.variableGrads(
          () => tf.sum(tf.mul(embed(chunk), upstream)) as tf.Scalar,
          varList,
        );
        surrogate.dispose();
        for (const [varName, g] of Object.entries(chunkGrads)) {
          const name = names.get(varName)!;
          const prev = grads.get(name);
          if (prev) {
            grads.set(name, addInto(prev, g));
            g.dispose();
          } else grads.set(name, g);
        }
      });
      tf.dispose(pieces);
    });
  } catch (err) {
    tf.dispose([...grads.values()]);
    throw err;
  } finally {
    tf.dispose(embeddingGrads);
  }
  return { loss: value, grads };
}

/**
 * Cached MNRL (sentence-transformers `CachedMultipleNegativesRankingLoss`): `columns[0]` the anchors'
 * mini-batches, `columns[1]` the positives', further columns hard negatives; `symmetric` selects
 * `MultipleNegativesSymmetricRankingLoss` (`CachedMultipleNegativesSymmetricRankingLoss`).
 */
export function cachedMultipleNegativesRankingLoss<Chunk>(
  columns: readonly (readonly Chunk[])[],
  embed: EmbedChunk<Chunk>,
  params: Map<string, tf.Variable>,
  options: MultipleNegativesRankingOptions & { symmetric?: boolean } = {},
): GradCacheResult {
  if (columns.length < 2) throw new Error('cachedMultipleNegativesRankingLoss: needs the anchor and positive columns');
  const lossOf = options.symmetric ? multipleNegativesSymmetricRankingLoss : multipleNegativesRankingLoss;
  return gradCache(columns, embed, ([anchors, ...candidates]) => lossOf(anchors!, candidates, options), params);
}

/**
 * Cached bge InfoNCE: the queries' mini-batches and the passages' mini-batches (B·G passages in
 * group order, each query's positive first), embeddings normalised by `embed` as the model does.
 */
export function cachedInfoNceLoss<Chunk>(
  queryChunks: readonly Chunk[],
  passageChunks: readonly Chunk[],
  embed: EmbedChunk<Chunk>,
  params: Map<string, tf.Variable>,
  options: InfoNceOptions = {},
): GradCacheResult {
  return gradCache([queryChunks, passageChunks], embed, ([q, p]) => infoNceLoss(q!, p!, options), params);
}

/** Splits `items` into consecutive mini-batches of at most `size` (the last may be shorter). */
export function miniBatches<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new Error(`mini-batch size must be an integer ≥ 1 (got ${size})`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
