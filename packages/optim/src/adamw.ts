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
import { tf } from '@kotune/engine';
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

  constructor(private readonly params: Map<string, tf.Variable>, options: AdamWOptions = {}) {
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.decays = options.decay ?? isDecayParameter;
    for (const [what, v, lo, hi] of [['beta1', this.beta1, 0, 1], ['beta2', this.beta2, 0, 1], ['eps', this.eps, 0, Infinity], ['weight decay', this.weightDecay, 0, Infinity]] as const) {
      if (!(v >= lo && v < hi)) throw new Error(`AdamW: ${what} ${v} is outside [${lo}, ${hi})`);
    }
  }

  /** Updates taken so far. */
  get stepCount(): number {
    return this.steps;
  }

  /**
   * One update with the given (already clipped) gradients at learning rate `lr`. Parameters without
   * a gradient in `grads` are left alone, as torch skips parameters whose `.grad` is None.
   */
  step(grads: Map<string, tf.Tensor>, lr: number): void {
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`AdamW: learning rate must be a finite number ≥ 0 (got ${lr})`);
    for (const [name, g] of grads) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW: gradient for "${name}", which is not a parameter of this optimizer`);
      if (g.shape.length !== p.shape.length || g.shape.some((d, i) => d !== p.shape[i])) throw new Error(`AdamW: gradient of "${name}" has shape [${g.shape}], the parameter [${p.shape}]`);
    }
    this.steps++;
    const t = this.steps;
    const stepSize = lr / (1 - this.beta1 ** t);
    const biasCorrection2Sqrt = Math.sqrt(1 - this.beta2 ** t);
    for (const [name, g] of grads) {
      const p = this.params.get(name)!;
      const m = this.momentsOf(name, p);
      tf.tidy(() => {
        const expAvg = m.expAvg.mul(this.beta1).add(g.mul(1 - this.beta1));
        const expAvgSq = m.expAvgSq.mul(this.beta2).add(g.square().mul(1 - this.beta2));
        const decayed = this.weightDecay > 0 && lr > 0 && this.decays(name) ? p.mul(1 - lr * this.weightDecay) : p;
        const denom = expAvgSq.sqrt().div(biasCorrection2Sqrt).add(this.eps);
        p.assign(decayed.sub(expAvg.div(denom).mul(stepSize)));
        m.expAvg.assign(expAvg);
        m.expAvgSq.assign(expAvgSq);
      });
    }
  }

  private momentsOf(name: string, p: tf.Variable): Moments {
    let m = this.moments.get(name);
    if (!m) {
      const zeros = tf.zerosLike(p);
      m = { expAvg: tf.variable(zeros, false), expAvgSq: tf.variable(zeros, false) };
      zeros.dispose(); // each variable holds its own reference to the data
      this.moments.set(name, m);
    }
    return m;
  }

  /** A copy of the step count and moments, for a checkpoint (`moments` is ready for `writeSafetensors`). */
  state(): AdamWState {
    const moments = new Map<string, F32Tensor>();
    for (const [name, m] of this.moments) {
      moments.set(EXP_AVG + name, { dtype: 'F32', shape: [...m.expAvg.shape], data: Float32Array.from(m.expAvg.dataSync() as Float32Array) });
      moments.set(EXP_AVG_SQ + name, { dtype: 'F32', shape: [...m.expAvgSq.shape], data: Float32Array.from(m.expAvgSq.dataSync() as Float32Array) });
    }
    return { step: this.steps, moments };
  }

  /**
   * Restores `state()` output (e.g. read back with `readSafetensors`). Every moment must belong to a
   * parameter of this optimizer and match its shape; `where` names the source in errors.
   */
  loadState(state: { step: number; moments: Map<string, { dtype: string; shape: number[]; data: ArrayLike<number> }> }, where = 'optimizer state'): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`${where}: step ${state.step} is not a non-negative integer`);
    const loaded = new Map<string, { expAvg?: tf.Tensor; expAvgSq?: tf.Tensor }>();
    try {
      for (const [key, t] of state.moments) {
        const isSq = key.startsWith(EXP_AVG_SQ);
        if (!isSq && !key.startsWith(EXP_AVG)) throw new Error(`${where}: tensor "${key}" is neither exp_avg.<param> nor exp_avg_sq.<param>`);
        const name = key.slice(isSq ? EXP_AVG_SQ.length : EXP_AVG.length);
        const p = this.params.get(name);
        if (!p) throw new Error(`${where}: "${key}" belongs to "${name}", which is not a parameter of this model`);
        if (t.dtype !== 'F32' && t.dtype !== 'float32') throw new Error(`${where}: "${key}" has dtype ${t.dtype}, expected F32`);
        if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) throw new Error(`${where}: "${key}" has shape [${t.shape}], the parameter [${p.shape}]`);
        const entry = loaded.get(name) ?? {};
        entry[isSq ? 'expAvgSq' : 'expAvg'] = tf.tensor(Float32Array.from(t.data), t.shape, 'float32');
        loaded.set(name, entry);
      }
      for (const [name, entry] of loaded) {
        if (!entry.expAvg || !entry.expAvgSq) throw new Error(`${where}: "${name}" has ${entry.expAvg ? 'exp_avg' : 'exp_avg_sq'} but not ${entry.expAvg ? 'exp_avg_sq' : 'exp_avg'}`);
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
