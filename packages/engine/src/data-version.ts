/**
 * How many times a tensor's data has been rewritten in place, by its data id. Kernels keep an id's data
 * immutable but for one writer: the optimizer's update of a parameter that no other tensor shares
 * (`nativeAdamW`), which keeps the id. Caches of values made from a tensor's data (packed layers, transposed
 * weights) therefore key on the id and this count together.
 */
import type * as tf from '@tensorflow/tfjs';

const rewrites = new WeakMap<tf.DataId, number>();

/** The number of in-place rewrites of the data `dataId` names (0 for data written once). */
export function dataVersion(dataId: tf.DataId): number {
  return rewrites.get(dataId) ?? 0;
}

/** Records that the data `dataId` names has new values under the same id. */
export function markRewritten(dataId: tf.DataId): void {
  rewrites.set(dataId, dataVersion(dataId) + 1);
}
