/**
 * The training loop, in Hugging Face `Trainer` order (docs/training.md, "Step order"):
 *
 *   for each optimizer step:
 *     for each of its micro-batches (`gradient_accumulation_steps`, fewer at the end of an epoch):
 *       forward, loss, gradients; added to the step's average
 *     clip to `max_grad_norm` -> AdamW step at the scheduler's rate for this step -> scheduler step
 *     log / evaluate (a new best is checkpointed) / checkpoint, as the intervals say (callbacks.ts)
 *   export the final model to `output_dir`
 *
 * Determinism: batches come from the seeded sampler, and every forward draws its dropout seed from the
 * trainer's own generator, whose state goes into each checkpoint with the sampler's position; a resumed
 * run therefore repeats the interrupted one's steps exactly (same backend). The run's state is run.ts.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@kotune/engine';
import { evaluateAndKeepBest, StepLog, type StepResult } from './callbacks.ts';
import { removeStaleTemporaries } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { NonFiniteLossError } from './errors.ts';
import type { TrainModel } from './model.ts';
import { microBatchGradients } from './objective.ts';
import { NonFiniteGradientError } from './optimization.ts';
import { formatPlan, planTraining } from './plan.ts';
import { Progress } from './progress.ts';
import { lastGoodState, nextStepBatches, openRun, saveRunCheckpoint, type Run } from './run.ts';

export interface TrainOptions {
  /** Where status lines go (default stderr). */
  print?: (line: string) => void;
  /** Stream of the progress bar and log lines (default stderr). */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Called after every optimizer step (tests watch memory with it). */
  onStep?: (step: number, loss: number) => void;
  /** Return the trained model in the result instead of disposing it (the caller disposes it). */
  keepModel?: boolean;
}

export interface TrainResult {
  /** The run folder; the final model is exported at its root. */
  outputDir: string;
  globalStep: number;
  /** Loss of the last step. */
  lastLoss: number;
  /** Metrics of the last evaluation (null without eval_data). */
  lastEval: Record<string, number> | null;
  bestMetric: number | null;
  /** Folder of the best evaluation's checkpoint. */
  bestCheckpoint: string | null;
  /** The trained model, with `keepModel` only. */
  model?: TrainModel;
}

export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const print = options.print ?? ((line: string) => process.stderr.write(`${line}\n`));
  await initBackend({ backend: config.backend ?? undefined, log: print }); // prints the one "backend: ..." line
  mkdirSync(config.output_dir, { recursive: true });
  removeStaleTemporaries(config.output_dir);
  const plan = await planTraining(config);
  print(formatPlan(config, plan));

  const run = await openRun(config, plan, print);
  const progress = new Progress({ totalSteps: plan.totalSteps, startStep: run.globalStep, stream: options.progressStream });
  const log = new StepLog(run, progress);
  let lastLoss = NaN;
  let modelReturned = false;
  try {
    while (run.globalStep < plan.totalSteps) {
      const step = await optimizerStep(run);
      lastLoss = step.loss;
      log.add(step);
      options.onStep?.(run.globalStep, step.loss);

      const last = run.globalStep === plan.totalSteps;
      const due = (every: number) => run.globalStep % every === 0;
      if (due(plan.logEvery) || last) log.write();
      const savedBest = plan.evalSet !== null && (due(plan.evalEvery) || last) && await evaluateAndKeepBest(run, plan.evalSet, progress);
      if (due(plan.saveEvery) && !savedBest) await saveRunCheckpoint(run);
    }
    progress.finish();
    await run.model.save(config.output_dir);
    const best = run.bestCheckpoint && join(config.output_dir, run.bestCheckpoint);
    print(`done: ${run.globalStep} steps; model saved to ${config.output_dir}` +
      (best ? `; best ${config.metric_for_best_model} ${run.bestMetric!.toFixed(4)} at ${best}` : ''));
    modelReturned = options.keepModel === true;
    return {
      outputDir: config.output_dir, globalStep: run.globalStep, lastLoss, lastEval: run.lastEval, bestMetric: run.bestMetric,
      bestCheckpoint: best, ...(modelReturned ? { model: run.model } : {}),
    };
  } finally {
    progress.finish();
    run.optimization.dispose();
    if (!modelReturned) run.model.dispose();
  }
}

/**
 * One optimizer step: each micro-batch's loss and gradients (averaged over the step's micro-batches), then
 * clipping, AdamW and the schedule. A NaN or infinite loss or gradient stops the run before the update,
 * naming the last good checkpoint.
 */
async function optimizerStep(run: Run): Promise<StepResult> {
  const batches = await nextStepBatches(run);
  run.optimization.begin(batches.length);
  let loss = 0;
  for (const batch of batches) {
    const micro = microBatchGradients(run.config, run.model, batch, run.rng, run.parameters);
    run.optimization.add(micro.grads);
    loss += micro.loss / batches.length;
  }
  const stop = (why: string) =>
    new NonFiniteLossError(`step ${run.globalStep + 1}: ${why}; training stopped before the update. ${lastGoodState(run.config.output_dir)}`);
  if (!Number.isFinite(loss)) throw stop(`the loss is ${loss}`);
  let update: { learningRate: number; gradNorm: number };
  try {
    update = run.optimization.step();
  } catch (error) {
    if (error instanceof NonFiniteGradientError) throw stop(error.message);
    throw error;
  }
  run.globalStep += 1;
  return { loss, ...update, samples: batches.reduce((n, b) => n + b.queries.length, 0) };
}
