import * as assert from 'uvu/assert';
import { type EncoderDims, loadNative, type NativeKernels } from '../src/index.ts';
import { encoderMissing, nativeTest as test } from './support.ts';

/**
 * The native encoder layer (src/encoder.cc) against a float64 reference of the post-LN BERT layer written out
 * here loop by loop (the exact erf GELU, biased variance, softmax in double), on both built-in product tiles.
 * The sizes are odd on purpose: hidden 36 in 3 heads of 12 (the Q, K, V product is 108 columns: three AVX-512
 * panels and a partial one), FFN 100, sequences that are not multiples of the register tiles' rows, padded
 * batches (three lengths, and keys masked in the middle of a sequence), and one sequence of 530 tokens so that the
 * attention takes its online-softmax path over key blocks of 512 as well as the one-block path.
 * Tolerance: the fixtures' 1e-5 · max|reference| (README) over every position, pads included; float32 products of
 * ≤ 100 terms and the erf approximation (≤ 1.5e-7) stay near 1e-6 here, while a wrong index, mask or block is
 * off by O(1).
 */
const MASKED = -3.4028234663852886e38;
/** Both AVX tiles; none where the fused layer is absent (no addon, or no AVX2: arm64, the portable build). */
const kernels: NativeKernels[] =
  encoderMissing !== undefined
    ? []
    : (['builtin', 'builtin-avx2'] as const).map((choice) => (loadNative(choice) as { kernels: NativeKernels }).kernels);
if (encoderMissing !== undefined) console.log(`skip: the encoder layer tests (${encoderMissing})`);

let state = 987654321;
function uniform(n: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    out[i] = (state / 2 ** 31 - 1) * scale;
  }
  return out;
}

/** erf in float64 (the series 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)), all terms positive). */
function erf64(x: number): number {
  const ax = Math.abs(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 400 && term > sum * 1e-17; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * Math.min(1, (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum);
}

/** y[rows, n] = x[rows, k] · Wᵀ + b, W [n, k] (PyTorch's Linear), in float64. */
function linear(x: ArrayLike<number>, rows: number, k: number, w: Float32Array, b: Float32Array, n: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += x[r * k + p]! * w[j * k + p]!;
      y[r * n + j] = s + b[j]!;
    }
  }
  return y;
}

function layerNorm(x: Float64Array, rows: number, n: number, w: Float32Array, b: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let j = 0; j < n; j++) mean += x[r * n + j]! / n;
    let variance = 0;
    for (let j = 0; j < n; j++) variance += (x[r * n + j]! - mean) ** 2 / n;
    const rstd = 1 / Math.sqrt(variance + eps);
    for (let j = 0; j < n; j++) y[r * n + j] = (x[r * n + j]! - mean) * rstd * w[j]! + b[j]!;
  }
  return y;
}

function referenceLayer(
  weights: Float32Array[],
  x: Float32Array,
  mask: Float32Array,
  [batch, seq, hidden, heads, ffn]: EncoderDims,
  eps: number,
): Float64Array {
  const [wq, bq, wk, bk, wv, bv, wo, bo, ln1w, ln1b, w1, b1, w2, b2, ln2w, ln2b] = weights as Float32Array[];
  const tokens = batch * seq;
  const d = hidden / heads;
  const q = linear(x, tokens, hidden, wq!, bq!, hidden);
  const k = linear(x, tokens, hidden, wk!, bk!, hidden);
  const v = linear(x, tokens, hidden, wv!, bv!, hidden);
  const ctx = new Float64Array(tokens * hidden);
  const z = new Float64Array(seq);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < seq; i++) {
        const qi = (b * seq + i) * hidden + h * d;
        let top = -Infinity;
        for (let j = 0; j < seq; j++) {
          let s = 0;
          for (let c = 0; c < d; c++) s += q[qi + c]! * k[(b * seq + j) * hidden + h * d + c]!;
          z[j] = s / Math.sqrt(d) + mask[b * seq + j]!;
          top = Math.max(top, z[j]!);
        }
        let sum = 0;
        for (let j = 0; j < seq; j++) sum += z[j] = Math.exp(z[j]! - top);
        for (let j = 0; j < seq; j++) {
          const p = z[j]! / sum;
          for (let c = 0; c < d; c++) ctx[qi + c] += p * v[(b * seq + j) * hidden + h * d + c]!;
        }
      }
    }
  }
  const attention = linear(ctx, tokens, hidden, wo!, bo!, hidden);
  for (let i = 0; i < attention.length; i++) attention[i] += x[i]!;
  const a = layerNorm(attention, tokens, hidden, ln1w!, ln1b!, eps);
  const f = linear(a, tokens, hidden, w1!, b1!, ffn).map((u) => u * 0.5 * (1 + erf64(u / Math.SQRT2)));
  const out = linear(f, tokens, ffn, w2!, b2!, hidden);
  for (let i = 0; i < out.length; i++) out[i] += a[i]!;
  return layerNorm(out, tokens, hidden, ln2w!, ln2b!, eps);
}

/** The additive mask of sequences of `lengths` (pads after each), with keys [2, 6) of the second sequence masked too. */
function maskOf(lengths: readonly number[], seq: number): Float32Array {
  return Float32Array.from({ length: lengths.length * seq }, (_, i) => {
    const b = Math.floor(i / seq);
    const j = i % seq;
    return j < lengths[b]! && !(b === 1 && j >= 2 && j < 6) ? 0 : MASKED;
  });
}

const CASES: { hidden: number; heads: number; ffn: number; lengths: number[]; seq: number }[] = [
  { hidden: 36, heads: 3, ffn: 100, lengths: [37, 20, 5], seq: 37 },
  { hidden: 24, heads: 2, ffn: 40, lengths: [530, 300], seq: 530 },
];

for (const native of kernels) {
  for (const { hidden, heads, ffn, lengths, seq } of CASES) {
    test(`${native.kernel}: encoderLayer equals the float64 layer (hidden ${hidden}, ${heads} heads, FFN ${ffn}, lengths ${lengths.join(', ')})`, () => {
      const eps = 1e-5;
      const shapes = [
        [hidden, hidden],
        [hidden],
        [hidden, hidden],
        [hidden],
        [hidden, hidden],
        [hidden],
        [hidden, hidden],
        [hidden],
        [hidden],
        [hidden],
        [ffn, hidden],
        [ffn],
        [hidden, ffn],
        [hidden],
        [hidden],
        [hidden],
      ];
      const weights = shapes.map((shape, i) => {
        const n = shape.reduce((p, s) => p * s, 1);
        // LayerNorm weights near 1; everything else large enough (0.3) that attention is far from uniform.
        return i === 8 || i === 14 ? uniform(n, 0.2).map((u) => 1 + u) : uniform(n, 0.3);
      });
      const dims: EncoderDims = [lengths.length, seq, hidden, heads, ffn];
      const x = uniform(lengths.length * seq * hidden, 1);
      const mask = maskOf(lengths, seq);
      const y = new Float32Array(x.length).fill(Number.NaN); // every entry must be written
      native.encoderLayer!(native.packEncoderLayer!(weights, hidden, ffn), x, mask, y, dims, Math.sqrt(hidden / heads), eps);
      const reference = referenceLayer(weights, x, mask, dims, eps);
      let scale = 0;
      let worst = 0;
      reference.forEach((r, i) => {
        scale = Math.max(scale, Math.abs(r));
        worst = Math.max(worst, Math.abs(y[i]! - r));
      });
      assert.ok(worst <= 1e-5 * scale, `max |native − float64| = ${worst} (${worst / scale} of max|reference|)`);
    });
  }
}

test.run();
