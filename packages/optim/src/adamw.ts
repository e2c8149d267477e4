/**
 * `torch.optim.AdamW` (Loshchilov & Hutter 2019, *Decoupled Weight Decay Regularization*,
 * https://arxiv.org/abs/1711.05101), the optimizer of Hugging Face `Trainer` (`adamw_torch`).
 * Per parameter p with gradient g, at step t (1-based), learning rate lr:
 *
 *   p ← p · (1 − lr · wd)                      decoupled decay (only for decay parameters)
 *   m ← β₁ m + (1 − β₁) g
 *   v ← β₂ v + (1 − β₂) g²
 *   p ← p − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)   (ε after the square root, after bias correction)
 *
 * The learning rate is passed to every `step` (the schedule lives outside), so a step taken at lr 0
 * still advances t and the moments, as HF's warmup does. The moments can be exported as Float32Arrays
 * (for a checkpoint) and restored.
 */
import { nativeAdamW, tf } from '@kotune/engine';
import { isDecayParameter } from './decay.ts';

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Which parameters decay; default HF's grouping (`isDecayParameter`). */
  decay?: (name: string) => boolean;
}

/** A float32 tensor as `writeSafetensors` takes it and `readSafetensors` returns it. */
export interface F32Tensor {
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

export interface AdamWState {
  /** Updates taken so far (torch's per-parameter `state["step"]`, equal for all parameters here). */
  step: number;
  /** `exp_avg.<param>` and `exp_avg_sq.<param>` for every parameter that has been updated. */
  moments: Map<string, F32Tensor>;
}

interface Moments {
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
}

const EXP_AVG = 'exp_avg.';
const EXP_AVG_SQ = 'exp_avg_sq.';

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decays: (name: string) => boolean;
  private readonly moments = new Map<string, Moments>();
  private steps = 0;

  constructor(
    private readonly params: Map<string, tf.Variable>,
    options: AdamWOptions = {},
  ) {
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.decays = options.decay ?? isDecayParameter;
    for (const [what, v, lo, hi] of [
      ['beta1', this.beta1, 0, 1],
      ['beta2', this.beta2, 0, 1],
      ['eps', this.eps, 0, Infinity],
      ['weight decay', this.weightDecay, 0, Infinity],
    ] as const) {
      if (!(v >= lo && v < hi)) throw new Error(`AdamW: ${what} ${v} is outside [${lo}, ${hi})`);
    }
  }

  /** Updates taken so far. */
  get stepCount(): number {
    return this.steps;
  }

  /**
   * One update with the given gradients at learning rate `lr`. Parameters without a gradient in `grads`
   * are left alone, as torch skips parameters whose `.grad` is None. `gradScale` (a clipping coefficient,
   * default 1) multiplies each gradient just before its own update: the same values as clipping all of them
   * first, without a second copy of every gradient alive during the step.
   */
  step(grads: Map<string, tf.Tensor>, lr: number, gradScale = 1): void {
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`AdamW: learning rate must be a finite number ≥ 0 (got ${lr})`);
    if (!(gradScale > 0) || !Number.isFinite(gradScale))
      throw new Error(`AdamW: gradient scale must be a finite number > 0 (got ${gradScale})`);
    for (const [name, g] of grads) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW: gradient for "${name}", which is not a parameter of this optimizer`);
      if (g.shape.length !== p.shape.length || g.shape.some((d, i) => d !== p.shape[i]))
        throw new Error(`AdamW: gradient of "${name}" has shape [${g.shape}], the parameter [${p.shape}]`);
    }
    this.steps++;
    const t = this.steps;
    const stepSize = lr / (1 - this.beta1 ** t);
    const biasCorrection2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    for (const [name, gradient] of grads) {
      const p = this.params.get(name)!;
      const m = this.momentsOf(name, p);
      const decay = this.weightDecay > 0 && lr > 0 && this.decays(name) ? 1 - lr * this.weightDecay : 1;
      // On wasm and cpu with the native kernels: the whole update in one pass, the same float32 operations
      // in the same order as the tensor ops below, so the same bits, written in place.
      const updatedNatively = nativeAdamW(p, gradient, m.expAvg, m.expAvgSq, {
        beta1: this.beta1,
        oneMinusBeta1: 1 - this.beta1,
        beta2: this.beta2,
        oneMinusBeta2: 1 - this.beta2,
        decay,
        biasCorrection2Sqrt,
        eps: this.eps,
        stepSize,
        gradScale,
      });
      if (updatedNatively) continue;
      // The same ops as torch's `_single_tensor_adamw`, in its order, but each parameter-sized intermediate is
      // freed as soon as the next one exists and each result goes into its variable at once (whose old data is
      // then freed): at most four parameter-sized temporaries are alive (the scaled gradient included), where one tidy over the whole update
      // kept all fourteen until its end (0.7 GB for a 32k × 384 word-embedding matrix). The tidy only
      // collects the scalars.
      tf.tidy(() => {
        const g = gradScale === 1 ? gradient : gradient.mul(gradScale);
        assignAndFree(
          m.expAvg,
          chain(
            m.expAvg,
            (x) => x.mul(this.beta1),
            (x) => addAndFree(x, g.mul(1 - this.beta1)),
          ),
        );
        assignAndFree(
          m.expAvgSq,
          chain(
            m.expAvgSq,
            (x) => x.mul(this.beta2),
            (x) =>
              addAndFree(
                x,
                chain(
                  g,
                  (y) => y.square(),
                  (y) => y.mul(1 - this.beta2),
                ),
              ),
          ),
        );
        if (decay !== 1) assignAndFree(p, p.mul(decay));
        const denom = chain(
          m.expAvgSq,
          (x) => x.sqrt(),
          (x) => x.div(biasCorrection2Sqrt),
          (x) => x.add(this.eps),
        );
        const update = chain(
          m.expAvg,
          (x) => {
            const quotient = x.div(denom);
            denom.dispose();
            return quotient;
          },
          (x) => x.mul(stepSize),
        );
        assignAndFree(p, p.sub(update));
        update.dispose();
        if (g !== gradient) g.dispose();
      });
    }
  }

  private momentsOf(name: string, p: tf.Variable): Moments {
    let m = this.moments.get(name);
    if (!m) {
      // Two tensors, not one shared: the native update writes each moment in place.
      const [zeros, zerosSq] = [tf.zerosLike(p), tf.zerosLike(p)];
      m = { expAvg: tf.variable(zeros, false), expAvgSq: tf.variable(zerosSq, false) };
      tf.dispose([zeros, zerosSq]); // each variable holds its own reference to its data
      this.moments.set(name, m);
    }
    return m;
  }

  /** A copy of the step count and moments, for a checkpoint (`moments` is ready for `writeSafetensors`). */
  state(): AdamWState {
    const moments = new Map<string, F32Tensor>();
    for (const [name, m] of this.moments) {
      moments.set(EXP_AVG + name, {
        dtype: 'F32',
        shape: [...m.expAvg.shape],
        data: Float32Array.from(m.expAvg.dataSync() as Float32Array),
      });
      moments.set(EXP_AVG_SQ + name, {
        dtype: 'F32',
        shape: [...m.expAvgSq.shape],
        data: Float32Array.from(m.expAvgSq.dataSync() as Float32Array),
      });
    }
    return { step: this.steps, moments };
  }

  /**
   * Restores `state()` output (e.g. read back with `readSafetensors`). Every moment must belong to a
   * parameter of this optimizer and match its shape; `where` names the source in errors.
   */
  loadState(
    state: { step: number; moments: Map<string, { dtype: string; shape: number[]; data: ArrayLike<number> }> },
    where = 'optimizer state',
  ): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`${where}: step ${state.step} is not a non-negative integer`);
    const loaded = new Map<string, { expAvg?: tf.Tensor; expAvgSq?: tf.Tensor }>();
    try {
      for (const [key, t] of state.moments) {
        const isSq = key.startsWith(EXP_AVG_SQ);
        if (!isSq && !key.startsWith(EXP_AVG))
          throw new Error(`${where}: tensor "${key}" is neither exp_avg.<param> nor exp_avg_sq.<param>`);
        const name = key.slice(isSq ? EXP_AVG_SQ.length : EXP_AVG.length);
        const p = this.params.get(name);
        if (!p) throw new Error(`${where}: "${key}" belongs to "${name}", which is not a parameter of this model`);
        if (t.dtype !== 'F32' && t.dtype !== 'float32') throw new Error(`${where}: "${key}" has dtype ${t.dtype}, expected F32`);
        if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
          throw new Error(`${where}: "${key}" has shape [${t.shape}], the parameter [${p.shape}]`);
        const entry = loaded.get(name) ?? {};
        entry[isSq ? 'expAvgSq' : 'expAvg'] = tf.tensor(Float32Array.from(t.data), t.shape, 'float32');
        loaded.set(name, entry);
      }
      for (const [name, entry] of loaded) {
        if (!entry.expAvg || !entry.expAvgSq)
          throw new Error(
            `${where}: "${name}" has ${entry.expAvg ? 'exp_avg' : 'exp_avg_sq'} but not ${entry.expAvg ? 'exp_avg_sq' : 'exp_avg'}`,
          );
      }
    } catch (err) {
      for (const e of loaded.values()) tf.dispose([e.expAvg, e.expAvgSq].filter((x): x is tf.Tensor => x !== undefined));
      throw err;
    }
    this.disposeMoments();
    for (const [name, { expAvg, expAvgSq }] of loaded) {
      this.moments.set(name, { expAvg: tf.variable(expAvg!, false), expAvgSq: tf.variable(expAvgSq!, false) });
      tf.dispose([expAvg!, expAvgSq!]);
    }
    this.steps = state.step;
  }

  private disposeMoments(): void {
    for (const m of this.moments.values()) tf.dispose([m.expAvg, m.expAvgSq]);
    this.moments.clear();
  }

  /** Frees the moment tensors (the parameters belong to the model). */
  dispose(): void {
    this.disposeMoments();
  }
}

/** `ops` applied to `x` in turn, each intermediate freed once the next exists (`x` itself is kept). */
function chain(x: tf.Tensor, ...ops: Array<(t: tf.Tensor) => tf.Tensor>): tf.Tensor {
  let t = x;
  for (const op of ops) {
    const next = op(t);
    if (t !== x) t.dispose();
    t = next;
  }
  return t;
}

/** `a + b`, freeing `b` (a temporary; `chain` frees `a`). */
function addAndFree(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const sum = a.add(b);
  b.dispose();
  return sum;
}

/** Puts `value` into `variable` (whose old data is freed) and drops the temporary's own reference. */
function assignAndFree(variable: tf.Variable, value: tf.Tensor): void {
  variable.assign(value);
  value.dispose();
}
