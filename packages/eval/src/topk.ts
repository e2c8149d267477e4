/**
 * Exact nearest-neighbour search by cosine similarity over a corpus held as one contiguous Float32Array
 * (4 bytes × dim × N), keeping per query only a k-sized heap: memory is the matrix plus O(queries × k).
 */
import { loadDotRows } from '@kotune/native';

export interface Hit {
  /** Row of the corpus matrix. */
  index: number;
  score: number;
}

/** `a` ranks after `b`: lower score, or equal score and higher index (ties go to the earlier row). */
function worse(a: Hit, b: Hit): boolean {
  return a.score < b.score || (a.score === b.score && a.index > b.index);
}

/** The k best hits seen so far, as a binary heap whose root is the worst of them. */
export class TopK {
  private readonly heap: Hit[] = [];

  constructor(readonly k: number) {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`TopK needs a positive integer k, got ${k}`);
  }

  get size(): number {
    return this.heap.length;
  }

  push(index: number, score: number): void {
    const heap = this.heap;
    if (heap.length < this.k) {
      heap.push({ index, score });
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!worse(heap[i], heap[parent])) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
      return;
    }
    // `worse(root, candidate)` written out so that the candidate is not allocated first: over a large corpus
    // almost every row is turned away here.
    const root = heap[0];
    if (!(root.score < score || (root.score === score && root.index > index))) return;
    heap[0] = { index, score };
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && worse(heap[left], heap[smallest])) smallest = left;
      if (right < heap.length && worse(heap[right], heap[smallest])) smallest = right;
      if (smallest === i) break;
      [heap[i], heap[smallest]] = [heap[smallest], heap[i]];
      i = smallest;
    }
  }

  /** Best first; ties by index ascending. */
  sorted(): Hit[] {
    return [...this.heap].sort((a, b) => b.score - a.score || a.index - b.index);
  }
}

/** Scales `vector` to unit length in place (`x / max(‖x‖, 1e-12)`, as torch `normalize`). */
export function normalizeInPlace(vector: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += vector[i] * vector[i];
  const scale = 1 / Math.max(Math.sqrt(sum), 1e-12);
  for (let i = 0; i < vector.length; i++) vector[i] *= scale;
  return vector;
}

/** Row-major N × dim matrix of unit vectors, filled batch by batch. */
export class VectorMatrix {
  readonly data: Float32Array;
  private filled = 0;

  constructor(
    readonly rows: number,
    readonly dim: number,
    data?: Float32Array,
  ) {
    if (data && data.length !== rows * dim) throw new Error(`VectorMatrix: ${data.length} floats for ${rows} × ${dim}`);
    this.data = data ?? new Float32Array(rows * dim);
    if (data) this.filled = rows;
  }

  get count(): number {
    return this.filled;
  }

  /** Appends vectors, normalised (cosine similarity becomes a dot product). */
  append(vectors: readonly Float32Array[]): void {
    for (const vector of vectors) {
      if (vector.length !== this.dim) throw new Error(`VectorMatrix: vector of ${vector.length} dims, expected ${this.dim}`);
      if (this.filled === this.rows) throw new Error(`VectorMatrix: more than ${this.rows} vectors`);
      const row = this.data.subarray(this.filled * this.dim, (this.filled + 1) * this.dim);
      row.set(vector);
      normalizeInPlace(row);
      this.filled++;
    }
  }
}

/** Queries scored together: each corpus row, once loaded, serves four dot products (about 2× faster in V8 than one query at a time). */
const QUERY_BLOCK = 4;

/**
 * With the native dot products: queries and corpus rows scored a block at a time (scores: 8 bytes × 64 × 4096 =
 * 2 MiB), so that each corpus row, once loaded, serves 64 queries.
 */
const NATIVE_QUERY_BLOCK = 64;
const NATIVE_ROW_BLOCK = 4096;

/**
 * The `k` corpus rows most cosine-similar to each query (exact; ties by row ascending). Each score is a float64
 * sum over d in order, the same bits whichever way it is computed: by @kotune/native's `dotRows` where the addon
 * is built (about 10× faster), else in JavaScript, four queries at a time. Each query keeps a k-sized heap, so
 * memory beyond the matrix is O(queries × k). `onProgress(done)` counts queries finished.
 */
export function searchTopK(
  corpus: VectorMatrix,
  queries: readonly Float32Array[],
  k: number,
  onProgress?: (done: number) => void,
): Hit[][] {
  if (corpus.count !== corpus.rows) throw new Error(`searchTopK: corpus has ${corpus.count} of ${corpus.rows} vectors`);
  const units = queries.map((q) => {
    if (q.length !== corpus.dim) throw new Error(`searchTopK: query of ${q.length} dims, corpus has ${corpus.dim}`);
    return normalizeInPlace(Float32Array.from(q));
  });
  const dotRows = loadDotRows();
  const blockSize = dotRows ? NATIVE_QUERY_BLOCK : QUERY_BLOCK;
  const results: Hit[][] = [];
  for (let start = 0; start < units.length; start += blockSize) {
    const block = units.slice(start, start + blockSize);
    const heaps = block.map(() => new TopK(k));
    if (dotRows) scoreNative(dotRows, corpus, block, heaps);
    else scoreFour(corpus, block, heaps);
    for (const heap of heaps) results.push(heap.sorted());
    onProgress?.(Math.min(start + blockSize, units.length));
  }
  return results;
}

/** Every corpus row's score for each query of `block` into its heap, row blocks at a time on the native kernel. */
function scoreNative(
  dotRows: NonNullable<ReturnType<typeof loadDotRows>>,
  corpus: VectorMatrix,
  block: Float32Array[],
  heaps: TopK[],
): void {
  const { dim, data, rows } = corpus;
  const queries = new Float32Array(block.length * dim);
  block.forEach((q, j) => queries.set(q, j * dim));
  const scores = new Float64Array(block.length * Math.min(NATIVE_ROW_BLOCK, rows));
  for (let first = 0; first < rows; first += NATIVE_ROW_BLOCK) {
    const n = Math.min(NATIVE_ROW_BLOCK, rows - first);
    const out = scores.subarray(0, block.length * n);
    dotRows(queries, data.subarray(first * dim, (first + n) * dim), dim, out);
    heaps.forEach((heap, j) => {
      for (let r = 0; r < n; r++) heap.push(first + r, out[j * n + r]!);
    });
  }
}

/** The same scores in JavaScript, for up to four queries: each corpus row, once loaded, serves all of them. */
function scoreFour(corpus: VectorMatrix, block: Float32Array[], heaps: TopK[]): void {
  const { dim, data, rows } = corpus;
  // Stands in for the missing queries of a short last block; its scores are computed and dropped.
  const none = new Float32Array(dim);
  const [q0, q1 = none, q2 = none, q3 = none] = block;
  const [h0, h1, h2, h3] = heaps;
  for (let row = 0; row < rows; row++) {
    const offset = row * dim;
    // Each sum runs over d in order, in float64, whatever the block: scores do not depend on the blocking.
    let s0 = 0,
      s1 = 0,
      s2 = 0,
      s3 = 0;
    for (let d = 0; d < dim; d++) {
      const x = data[offset + d];
      s0 += q0![d] * x;
      s1 += q1[d] * x;
      s2 += q2[d] * x;
      s3 += q3[d] * x;
    }
    h0!.push(row, s0);
    h1?.push(row, s1);
    h2?.push(row, s2);
    h3?.push(row, s3);
  }
}
