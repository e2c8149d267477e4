/**
 * Inference over many token sequences in length-sorted batches (longest first, as sentence-transformers'
 * `encode` and FlagEmbedding's `compute_score` do): each batch is padded only to its own longest sequence,
 * so similar lengths share a batch and little work goes to padding. Results come back in input order.
 * The batches share one transposed copy of each Linear weight (`withWeightCache`).
 */
import { tf, withWeightCache } from '@kotune/engine';

export async function mapSortedBatches(
  rows: number[][],
  batchSize: number,
  padId: number,
  run: (inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D) => tf.Tensor,
): Promise<Float32Array[]> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  const order = rows.map((_, i) => i).sort((a, b) => rows[b]!.length - rows[a]!.length || a - b);
  const results = new Array<Float32Array>(rows.length);
  await withWeightCache(async () => {
    for (let start = 0; start < order.length; start += batchSize) {
      const batch = order.slice(start, start + batchSize);
      const width = rows[batch[0]!]!.length;
      const ids = new Int32Array(batch.length * width).fill(padId);
      const mask = new Int32Array(batch.length * width);
      batch.forEach((row, b) => {
        ids.set(rows[row]!, b * width);
        mask.fill(1, b * width, b * width + rows[row]!.length);
      });
      const output = tf.tidy(() =>
        run(tf.tensor2d(ids, [batch.length, width], 'int32'), tf.tensor2d(mask, [batch.length, width], 'int32')),
      );
      const values = (await output.data()) as Float32Array;
      const perRow = values.length / batch.length;
      output.dispose();
      batch.forEach((row, b) => (results[row] = values.slice(b * perRow, (b + 1) * perRow)));
    }
  });
  return results;
}
