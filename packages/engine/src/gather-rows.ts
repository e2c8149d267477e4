/**
 * GatherV2 along axis 0 with no batch dimensions (nn.Embedding's lookup) as a copy of whole rows, for kotune's wasm
 * and cpu backends: the backends' own kernels compute an index per element (wasm ≈28 ms for 2,048 rows of a
 * [32000, 384] table; cpu ≈100 ns an element, 0.3 s of the two lookups of an XLM-R forward over 4,096 tokens).
 */
import * as tf from '@tensorflow/tfjs';

/** Whether a GatherV2 of `x` with these attributes takes whole rows of a float32 or int32 table. */
export function gathersRows(x: tf.TensorInfo, attrs: tf.NamedAttrMap | undefined): boolean {
  const { axis, batchDims } = attrs as { axis: number; batchDims?: number };
  return (
    (x.dtype === 'float32' || x.dtype === 'int32') && !batchDims && x.shape.length > 0 && tf.util.parseAxisParam(axis, x.shape)[0] === 0
  );
}

/** Throws tfjs's GatherV2 error for the first id outside a table of `rows` rows. */
export function checkRowIds(ids: ArrayLike<number>, rows: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(id >= 0 && id < rows)) throw new Error(`GatherV2: the index value ${id} is not in [0, ${rows - 1}]`);
  }
}

/** Row `ids[i]` of `table` (rows of `rowSize` values) into row i of `out`. */
export function copyRows(table: tf.TypedArray, ids: ArrayLike<number>, rowSize: number, out: tf.TypedArray): void {
  for (let i = 0; i < ids.length; i++) {
    const row = ids[i]! * rowSize;
    out.set(table.subarray(row, row + rowSize), i * rowSize);
  }
}
