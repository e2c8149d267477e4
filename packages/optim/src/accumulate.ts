/**
 * Gradient accumulation as HF `Trainer` does it with `gradient_accumulation_steps = k`: each
 * micro-batch's loss is divided by k before backward and the gradients are summed, so k micro-batches
 * of size b produce the gradient of the mean loss over the k·b examples (for losses that average
 * over the batch and micro-batches of equal size).
 */
import { addInto, tf } from '@kotune/engine';

export class GradientAccumulator {
  private sums = new Map<string, tf.Tensor>();
  private count = 0;

  constructor(readonly steps: number) {
    if (!Number.isInteger(steps) || steps < 1) throw new Error(`gradient accumulation steps must be an integer ≥ 1 (got ${steps})`);
  }

  /** Micro-batches added since the last `take`. */
  get added(): number {
    return this.count;
  }

  /**
   * Adds `grads / steps`; the caller keeps ownership of `grads`. With one step the sum is `grads` itself
   * (a clone shares the data): no second gradient-sized copy of the model is made.
   */
  add(grads: Map<string, tf.Tensor>): void {
    for (const [name, g] of grads) {
      const prev = this.sums.get(name);
      if (this.steps === 1 && !prev) {
        this.sums.set(name, g.clone());
        continue;
      }
      const part = tf.div(g, this.steps);
      if (prev) {
        this.sums.set(name, addInto(prev, part)); // in place where it can be (see addInto)
        part.dispose();
      } else this.sums.set(name, part);
    }
    this.count++;
  }

  /** The accumulated gradients (the caller owns and disposes them); the accumulator starts over. */
  take(): Map<string, tf.Tensor> {
    const out = this.sums;
    this.sums = new Map();
    this.count = 0;
    return out;
  }

  dispose(): void {
    tf.dispose([...this.sums.values()]);
    this.sums.clear();
    this.count = 0;
  }
}
