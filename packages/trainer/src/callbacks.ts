/**
 * What happens after an optimizer step, besides the step itself, as Hugging Face's `Trainer` callbacks do:
 *
 *   StepLog               every step: the progress line; every `logging_steps`: a metrics.jsonl line with the
 *                         averages since the previous one, the same line in the terminal, the plots redrawn
 *   evaluateAndKeepBest   every `eval_steps`: the metrics of `eval_data`, logged and plotted; a new best
 *                         `metric_for_best_model` is saved as a checkpoint at once
 *
 * Checkpoints every `save_steps` are `saveRunCheckpoint` (run.ts). docs/run-folder.md describes the lines.
 */
import { checkpointName } from './checkpoint.ts';
import { evaluate, type EvalSet } from './evaluate.ts';
import type { TrainLogLine } from './metrics-log.ts';
import { writePlots } from './plots.ts';
import type { Progress } from './progress.ts';
import { epochOf, saveRunCheckpoint, type Run } from './run.ts';

/** One optimizer step as the loop reports it. */
export interface StepResult {
  /** Mean loss over the step's micro-batches. */
  loss: number;
  /** The rate this step used. */
  learningRate: number;
  /** Gradient norm before clipping. */
  gradNorm: number;
  /** Queries the step trained on. */
  samples: number;
}

/** The training log: progress at every step, a line of averages every `logging_steps`. */
export class StepLog {
  private window = { loss: 0, steps: 0, samples: 0, started: performance.now() };
  private last: StepResult | null = null;

  constructor(
    private readonly run: Run,
    private readonly progress: Progress,
  ) {}

  private samplesPerSecond(): number {
    return this.window.samples / ((performance.now() - this.window.started) / 1000);
  }

  /** Counts a finished step into the current averages and redraws the progress line. */
  add(step: StepResult): void {
    this.window = {
      ...this.window,
      loss: this.window.loss + step.loss,
      steps: this.window.steps + 1,
      samples: this.window.samples + step.samples,
    };
    this.last = step;
    this.progress.update(this.run.globalStep, {
      loss: step.loss,
      learningRate: step.learningRate,
      samplesPerSecond: this.samplesPerSecond(),
    });
  }

  /** Writes the line of the steps since the previous one (metrics.jsonl and the terminal) and redraws the plots. */
  write(): void {
    const { run, last } = this;
    const line: TrainLogLine = {
      step: run.globalStep,
      epoch: +epochOf(run).toFixed(4),
      loss: this.window.loss / this.window.steps,
      learning_rate: last!.learningRate,
      grad_norm: last!.gradNorm,
      samples_per_second: this.samplesPerSecond(),
    };
    run.metrics.append(line);
    this.progress.line(
      `step ${line.step}/${run.plan.totalSteps} epoch ${line.epoch} loss ${line.loss.toFixed(4)} ` +
        `lr ${line.learning_rate.toExponential(3)} grad_norm ${line.grad_norm.toFixed(3)} ${line.samples_per_second.toFixed(1)} samples/s`,
    );
    writePlots(run.config.output_dir, run.metrics.all, { bestMetric: run.config.metric_for_best_model });
    this.window = { loss: 0, steps: 0, samples: 0, started: performance.now() };
  }
}

/**
 * Evaluates the model on `set`, logs and plots the metrics, and when `metric_for_best_model` beats the best
 * so far, records it and saves a checkpoint whatever `save_steps` says. Returns whether it saved one.
 */
export async function evaluateAndKeepBest(run: Run, set: EvalSet, progress: Progress): Promise<boolean> {
  const { config } = run;
  const metrics = await evaluate(config, run.model, set);
  run.lastEval = metrics;
  run.metrics.append({ step: run.globalStep, eval: metrics });
  const shown = new Set(['mrr@10', 'ndcg@10', 'accuracy@1', 'accuracy@5', config.metric_for_best_model]);
  progress.line(
    `eval step ${run.globalStep}: ${Object.entries(metrics)
      .filter(([k]) => shown.has(k))
      .map(([k, v]) => `${k} ${v.toFixed(4)}`)
      .join(', ')}`,
  );
  writePlots(config.output_dir, run.metrics.all, { bestMetric: config.metric_for_best_model });
  const value = metrics[config.metric_for_best_model];
  if (value === undefined) {
    throw new Error(
      `metric_for_best_model "${config.metric_for_best_model}" is not an eval metric; they are ${Object.keys(metrics).join(', ')}`,
    );
  }
  if (!(run.bestMetric === null || value > run.bestMetric)) return false;
  run.bestMetric = value;
  run.bestCheckpoint = checkpointName(run.globalStep);
  await saveRunCheckpoint(run);
  return true;
}
