/**
 * What a training loop needs of a model, whatever its head: `Reranker` and `Embedder` implement it, and
 * `kind` tells them apart (a reranker's `forward` gives logits of pairs, an embedder's sentence embeddings).
 */
import type { tf } from '@kotune/engine';
import type { XLMRTokenizer } from '@kotune/tokenizer';

export interface TrainableModel {
  readonly kind: 'reranker' | 'embedder';
  readonly tokenizer: XLMRTokenizer;
  /** Longest input the position table allows, special tokens included. */
  readonly maxSequenceLength: number;
  /** The trainable variables under their checkpoint names. */
  variables(): Map<string, tf.Variable>;
  /** Writes the folder Hugging Face (and, for embedders, sentence-transformers) loads. */
  save(dir: string): Promise<void>;
  dispose(): void;
}
