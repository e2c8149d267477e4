/**
 * The training loop, in Hugging Face `Trainer` order (docs/training.md, "Step order"):
 *
 *   for each optimizer step:
 *     for each of its micro-batches (`gradient_accumulation_steps`, fewer at the end of an epoch):
 *       forward, loss, gradients; added to the step's average
 *     clip to `max_grad_norm` -> AdamW step at the scheduler's rate for this step -> scheduler step
 *     log / evaluate (a new best is checkpointed) / checkpoint, as the intervals say (callbacks.ts), and at the
 *     last step (as HF saves at the end, so that a finished run can be trained further with --resume)
 *     on SIGINT / SIGTERM: checkpoint this step and stop (stop.ts)
 *   export the final model to `output_dir`
 *
 * Before all that, `preflight` checks the model, the run folder and the data, and `claimRunFolder` takes the
 * folder's lock (released however the run ends) and refuses to land on an earlier run by accident.
 *
 * Determinism: batches come from the seeded sampler, and every forward draws its dropout seed from the
 * trainer's own generator, whose state goes into each checkpoint with the sampler's position; a resumed
 * run therefore repeats the interrupted one's steps exactly (same backend). The run's state is run.ts.
 */
import { join } from 'node:path';
import { initBackend } from '@kotune/engine';
import { evaluateAndKeepBest, StepLog, type StepResult } from './callbacks.ts';
import type { TrainConfig } from './config.ts';
import { NonFiniteLossError, RunProblemsError, TrainingStoppedError } from './errors.ts';
import type { TrainModel } from './model.ts';
import { microBatchGradients } from './objective.ts';
import { NonFiniteGradientError } from './optimization.ts';
import { trainingMemoryOf } from './memory.ts';
import { formatPlan } from './plan.ts';
import { preflight } from './preflight.ts';
import { Progress } from './progress.ts';
import { claimRunFolder } from './run-folder.ts';
import { lastGoodState, nextStepBatches, openRun, saveRunCheckpoint, type Run } from './run.ts';
import { StopRequest } from './stop.ts';

export interface TrainOptions {
  /** Where status lines go (default stderr). */
  print?: (line: string) => void;
  /** Stream of the progress bar and log lines (default stderr). */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Called after every optimizer step (tests watch memory with it). */
  onStep?: (step: number, loss: number) => void;
  /** Return the trained model in the result instead of disposing it (the caller disposes it). */
  keepModel?: boolean;
  /** Stop gracefully on SIGINT / SIGTERM (stop.ts); default true. */
  handleSignals?: boolean;
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
  // Prints the "backend: ..." line; a run wasm cannot hold goes to cpu, with one more line saying why (memory.ts).
  await initBackend({ backend: config.backend ?? undefined, log: print, memory: await trainingMemoryOf(config) });
  const { plan, problems, notes } = await preflight(config);
  for (const note of notes) print(note);
  if (problems.length > 0 || plan === null) throw new RunProblemsError(problems);
  print(formatPlan(config, plan));

  const lock = claimRunFolder(config, print);
  let run: Run | null = null;
  let progress: Progress | null = null;
  const stop =
    options.handleSignals === false
      ? null
      : new StopRequest({
          onFirst: (signal) => {
            const line = `${signal}: stopping after this step, which is saved first (${signal === 'SIGINT' ? 'Ctrl-C' : 'a signal'} again stops at once)`;
            if (progress) progress.line(line);
            else print(line);
          },
          onSecond: (signal) => {
            progress?.finish();
            const saved = run?.saved?.path;
            print(`${signal} again: stopped at once; ${saved ? `the last checkpoint is ${saved}` : 'no checkpoint was saved'}`);
            lock.release();
            process.exit(StopRequest.exitCode(signal));
          },
        });
  try {
    run = await openRun(config, plan, print);
    if (run.globalStep === plan.totalSteps) {
      print(
        `${run.saved!.path} is the run's last step (${plan.totalSteps}): nothing to train. ` +
          `To train further, resume with max_steps (or num_train_epochs) beyond it, e.g. --resume --max_steps ${2 * plan.totalSteps}`,
      );
    }
    progress = new Progress({ totalSteps: plan.totalSteps, startStep: run.globalStep, stream: options.progressStream });
    return await trainLoop(run, progress, stop, print, options);
  } finally {
    progress?.finish();
    stop?.dispose();
    lock.release();
  }
}

async function trainLoop(
  run: Run,
  progress: Progress,
  stop: StopRequest | null,
  print: (line: string) => void,
  options: TrainOptions,
): Promise<TrainResult> {
  const { config, plan } = run;
  const log = new StepLog(run, progress);
  let lastLoss = NaN;
  let modelReturned = false;
  try {
    while (run.globalStep < plan.totalSteps) {
      // A step is one long task: a pending SIGINT / SIGTERM reaches its listener only when the event loop turns.
      await new Promise((resolve) => setImmediate(resolve));
      if (stop?.signal) await stopHere(run, stop.signal, progress);
      const step = await optimizerStep(run);
      lastLoss = step.loss;
      log.add(step);
      options.onStep?.(run.globalStep, step.loss);

      const last = run.globalStep === plan.totalSteps;
      const due = (every: number) => run.globalStep % every === 0;
      if (due(plan.logEvery) || last) log.write();
      const savedBest = plan.evalSet !== null && (due(plan.evalEvery) || last) && (await evaluateAndKeepBest(run, plan.evalSet, progress));
      if ((due(plan.saveEvery) || last) && !savedBest) await saveRunCheckpoint(run);
    }
    progress.finish();
    await run.model.save(config.output_dir);
    const best = run.bestCheckpoint && join(config.output_dir, run.bestCheckpoint);
    print(
      `done: ${run.globalStep} steps; model saved to ${config.output_dir}` +
        (best ? `; best ${config.metric_for_best_model} ${run.bestMetric!.toFixed(4)} at ${best}` : ''),
    );
    modelReturned = options.keepModel === true;
    return {
      outputDir: config.output_dir,
      globalStep: run.globalStep,
      lastLoss,
      lastEval: run.lastEval,
      bestMetric: run.bestMetric,
      bestCheckpoint: best,
      ...(modelReturned ? { model: run.model } : {}),
    };
  } finally {
    run.optimization.dispose();
    if (!modelReturned) run.model.dispose();
  }
}

/** The graceful stop: a checkpoint of the step just finished (unless it has one), then `TrainingStoppedError`. */
async function stopHere(run: Run, signal: NodeJS.Signals, progress: Progress): Promise<never> {
  if (run.globalStep > 0 && run.saved?.step !== run.globalStep) await saveRunCheckpoint(run);
  progress.finish();
  throw new TrainingStoppedError(signal, run.globalStep, run.plan.totalSteps, run.saved?.path ?? null, StopRequest.exitCode(signal));
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
    new NonFiniteLossError(
      `step ${run.globalStep + 1}: ${why}; training stopped before the update. ${lastGoodState(run.config.output_dir)}`,
    );
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
