/**
 * LayerNorm, erf-GELU, attention's softmax and dropout with hand-written gradients.
 *
 * Autodiff differentiates these op by op: GELU's backward on the FFN activations ([tokens, 4·hidden]) is about
 * twelve full-size kernels (the erf rule alone squares, negates, exponentiates and multiplies), and LayerNorm's
 * about fifteen, each a pass over memory on one wasm thread. The rules below are PyTorch's own backward
 * formulas (`GeluBackward`, `native_layer_norm_backward`), from values saved by the forward, so the
 * gradients match PyTorch's to float32 rounding. The forwards are the same ops as the plain formulas, so
 * values do not change at all.
 */
import * as tf from '@tensorflow/tfjs';
import { withGradient } from './custom-grad.ts';
import { nativeDropout, nativeGelu, nativeKernelsOn, nativeLayerNorm, nativeScaledMaskedSoftmax } from './native-kernels.ts';

/** 1/√(2π), the standard normal density's constant. */
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * `0.5 x (1 + erf(x / √2))`, PyTorch's exact `nn.functional.gelu`. Backward:
 * dx = dy · (Φ(x) + x φ(x)), with Φ(x) = 0.5 (1 + erf(x/√2)) and φ(x) = e^(−x²/2)/√(2π).
 * (`x·0.5·(1+erf)` and `x·(0.5·(1+erf))` are equal bit for bit: halving is exact.) With the native kernels
 * each direction is one pass (the backward recomputes Φ instead of keeping it); otherwise the forward
 * saves Φ for the backward.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  return nativeKernelsOn() && x.dtype === 'float32' ? nativeGelu(x) : geluOps(x);
}

const geluOps = withGradient(([x], save) => {
  const cdf = tf.mul(tf.add(1, tf.erf(tf.div(x!, Math.SQRT2))), 0.5);
  save([x!, cdf]);
  return {
    value: tf.mul(x!, cdf),
    gradFunc: (dy, [x, cdf]) => {
      const xPdf = tf.mul(tf.mul(x!, tf.exp(tf.mul(tf.square(x!), -0.5))), INV_SQRT_2PI);
      return [tf.mul(dy, tf.add(cdf!, xPdf))];
    },
  };
});

/**
 * `nn.LayerNorm` over the last axis: `(x − mean) / √(biased variance + eps) · weight + bias`. Backward, with
 * x̂ = (x − mean)·r, r = 1/√(var + eps), g = dy·weight (means over the last axis):
 *   dx = r · (g − mean(g) − x̂ · mean(g·x̂)),   dweight = Σ_rows dy·x̂,   dbias = Σ_rows dy.
 */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  const width = x.shape[x.rank - 1]!;
  if (weight.shape[0] !== width || bias.shape[0] !== width) {
    throw new Error(`layerNorm: weight [${weight.shape}] and bias [${bias.shape}] do not match input [${x.shape}]`);
  }
  if (nativeKernelsOn() && [x, weight, bias].every((t) => t.dtype === 'float32')) {
    // One pass each way; the backward recomputes the normalised rows from x and two numbers per row.
    return nativeLayerNorm(x, weight, bias, eps);
  }
  return withGradient(([x, weight, bias], save) => {
    const centered = tf.sub(x!, tf.mean(x!, -1, true));
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(centered), -1, true), eps));
    const normalized = tf.mul(centered, r);
    save([normalized, r, weight!]);
    return {
      value: tf.add(tf.mul(normalized, weight!), bias!),
      gradFunc: (dy, [normalized, r, weight]) => {
        const g = tf.mul(dy, weight!);
        const dx = tf.mul(r!, tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(normalized!, tf.mean(tf.mul(g, normalized!), -1, true))));
        // Σ over every leading axis at once: on wasm, the [M, width] reshape summed over axis 0 ran 2-4x slower.
        const leading = Array.from({ length: dy.rank - 1 }, (_, axis) => axis);
        const rows = (t: tf.Tensor) => tf.sum(t, leading);
        return [dx, rows(tf.mul(dy, normalized!)), rows(dy)];
      },
    };
  })(x, weight, bias);
}

/**
 * Attention probabilities `softmax(scores / divisor + mask)` over the last axis, `mask` broadcast onto `scores`.
 * Backward, with p the output: dscores = (dy·p − Σ(dy·p)·p) / divisor, the same kernels and order as
 * autodiff's Softmax and RealDiv rules, so values and gradients are bit for bit those of the three plain ops.
 * What changes is memory: only p is kept for the backward, where autodiff keeps the scores, the scaled
 * scores and p ([batch·heads, seq, seq] each, 12.6 MB per layer at batch 16 × 128 tokens × 12 heads).
 * `mask` gets no gradient (it is an input, not a parameter).
 */
export function scaledMaskedSoftmax(scores: tf.Tensor, divisor: number, mask: tf.Tensor): tf.Tensor {
  const perBatchRow =
    scores.rank === 4 &&
    mask.rank === 4 &&
    mask.shape[0] === scores.shape[0] &&
    mask.shape[1] === 1 &&
    mask.shape[2] === 1 &&
    mask.shape[3] === scores.shape[3];
  if (nativeKernelsOn() && perBatchRow && scores.size > 0 && scores.dtype === 'float32' && mask.dtype === 'float32') {
    // One pass each way: scale, mask, exponentiate and normalise a row at a time.
    return nativeScaledMaskedSoftmax(scores, divisor, mask);
  }
  return withGradient(([scores], save) => {
    const probs = tf.softmax(tf.add(tf.div(scores!, divisor), mask));
    save([probs]);
    return {
      value: probs,
      gradFunc: (dy, [probs]) => {
        const dyTimesP = tf.mul(dy, probs!);
        return [tf.div(tf.sub(dyTimesP, tf.mul(tf.sum(dyTimesP, -1, true), probs!)), divisor)];
      },
    };
  })(scores);
}

/**
 * `nn.Dropout(rate)` in training mode with a reproducible mask: each element is kept when a 32-bit hash of
 * (seed, element index) is at least `rate · 2³²`, and kept elements are scaled by 1/(1 − rate); the backward
 * multiplies by the same mask. The mask is a function of `seed` and the shape only, so it is the same on
 * every backend and every run.
 *
 * Why not `tf.dropout`: its uniform numbers come from a JavaScript PRNG object one call per element, then
 * four full-size kernels turn them into the mask (41-47 ms CPU for attention probabilities [192, 128, 128] on
 * one wasm thread); here one integer loop writes the scaled mask directly and one multiply applies it (23-28 ms).
 * The native kernel does both in one pass and makes the mask again for the backward instead of keeping it.
 */
export function dropout(x: tf.Tensor, rate: number, seed: number): tf.Tensor {
  if (rate === 0) return x;
  const { seed: hashSeed, threshold, scale } = dropoutMask(rate, seed);
  if (nativeKernelsOn() && x.dtype === 'float32') {
    // One pass each way, the mask made on the fly from the seed both times: nothing full-size is kept.
    return nativeDropout(x, hashSeed, threshold, scale);
  }
  return tf.tidy(() => {
    const mask = tf.tensor(maskValues(x.size, hashSeed, threshold, scale), x.shape, 'float32');
    return withGradient(([x], save) => {
      save([mask]);
      return { value: tf.mul(x!, mask), gradFunc: (dy, [mask]) => [tf.mul(dy, mask!)] };
    })(x);
  });
}

/**
 * The mask `dropout(x, rate, seed)` applies, as its three numbers: an element is kept where its hash ≥ `threshold`
 * (`rate · 2³²`), then scaled by `scale`; `seed` as an unsigned 32-bit integer. The native training layer takes these.
 */
export function dropoutMask(rate: number, seed: number): { seed: number; threshold: number; scale: number } {
  if (!(rate >= 0 && rate < 1)) throw new Error(`dropout: rate must be in [0, 1), got ${rate}`);
  return { seed: seed >>> 0, threshold: Math.floor(rate * 2 ** 32), scale: 1 / (1 - rate) };
}

/** `scale` where hash(seed, i) ≥ `threshold`, else 0; the hash is `mix32` of seed + (i + 1)·φ (a Weyl sequence). */
function maskValues(size: number, seed: number, threshold: number, scale: number): Float32Array {
  const mask = new Float32Array(size);
  let h = seed;
  for (let i = 0; i < size; i++) {
    h = (h + 0x9e3779b9) | 0;
    if (mix32(h) >= threshold) mask[i] = scale;
  }
  return mask;
}

/** A 32-bit mixing function (murmur3's finaliser): spreads nearby integers over unrelated 32-bit values. */
export function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
