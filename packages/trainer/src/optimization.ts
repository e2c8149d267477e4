/**
 * Gradient accumulation, clipping, AdamW and the learning-rate schedule, with their state for checkpoints.
 * Order per step (Hugging Face, docs/training.md): the micro-batches' gradients averaged (each divided by the
 * number of micro-batches this step takes, as HF's `current_gradient_accumulation_steps`) -> clip to
 * `max_grad_norm` -> AdamW step at the schedule's rate for this step -> schedule step. The rate is a function
 * of the step count, so the optimizer's step count is the scheduler's whole state.
 */
import { tf } from '@kotune/engine';
import { AdamW, clipCoefficient, globalNorm, GradientAccumulator, learningRateSchedule } from '@kotune/optim';
import type { LoadedTensor, TensorToWrite } from '@kotune/weights';
import type { TrainConfig } from './config.ts';
import type { TrainPlan } from './plan.ts';

/** The gradient norm was NaN or infinite: no update was made. */
export class NonFiniteGradientError extends Error {}

export class Optimization {
  private readonly optimizer: AdamW;
  private readonly learningRateAt: (step: number) => number;
  private accumulator: GradientAccumulator | null = null;

  constructor(
    private readonly config: TrainConfig,
    parameters: Map<string, tf.Variable>,
    plan: Pick<TrainPlan, 'warmupSteps' | 'totalSteps'>,
  ) {
    this.optimizer = new AdamW(parameters, { weightDecay: config.weight_decay });
    this.learningRateAt = learningRateSchedule(config.lr_scheduler_type, config.learning_rate, {
      warmupSteps: plan.warmupSteps,
      totalSteps: plan.totalSteps,
    });
  }

  /** Optimizer steps taken (= scheduler steps). */
  get stepCount(): number {
    return this.optimizer.stepCount;
  }

  /** Starts a step of `microBatches` micro-batches. */
  begin(microBatches: number): void {
    this.accumulator?.dispose();
    this.accumulator = new GradientAccumulator(microBatches);
  }

  /** Adds one micro-batch's gradients (divided by the step's micro-batch count) and disposes them. */
  add(grads: Map<string, tf.Tensor>): void {
    try {
      this.accumulator!.add(grads);
    } finally {
      tf.dispose([...grads.values()]);
    }
  }

  /** Clips the accumulated gradients and updates the parameters; returns the rate used and the norm before clipping. */
  step(): { learningRate: number; gradNorm: number } {
    const grads = this.accumulator!.take();
    try {
      const gradNorm = globalNorm(grads.values());
      if (!Number.isFinite(gradNorm)) throw new NonFiniteGradientError(`the gradient norm is ${gradNorm}`);
      const learningRate = this.learningRateAt(this.optimizer.stepCount);
      // Clipping scales each gradient inside AdamW, just before its update, so no clipped copy of them all exists.
      const clip = this.config.max_grad_norm > 0 ? clipCoefficient(gradNorm, this.config.max_grad_norm) : 1;
      this.optimizer.step(grads, learningRate, clip);
      return { learningRate, gradNorm };
    } finally {
      tf.dispose([...grads.values()]);
    }
  }

  /** Scalars for `trainer_state.json`. */
  scalarState(): { step: number } {
    return { step: this.optimizer.stepCount };
  }

  /** The moments, for `optimizer.safetensors`. */
  tensorState(): Map<string, TensorToWrite> {
    return this.optimizer.state().moments;
  }

  load(scalars: { step: number }, tensors: Map<string, LoadedTensor>, where: string): void {
    this.optimizer.loadState(
      { step: scalars.step, moments: tensors as Map<string, { dtype: string; shape: number[]; data: ArrayLike<number> }> },
      where,
    );
  }

  dispose(): void {
    this.accumulator?.dispose();
    this.optimizer.dispose();
  }
}
