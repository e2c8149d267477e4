/**
 * The training loop, Hugging Face `Trainer` order (INTERFACE.md):
 *
 *   for each optimizer step:
 *     for each of its micro-batches (`gradient_accumulation_steps`, fewer at the end of an epoch):
 *       forward, loss, gradients; added to the step's average
 *     clip to `max_grad_norm` -> AdamW step at the scheduler's rate for this step -> scheduler step
 *     log (metrics.jsonl, progress, plots) / evaluate (a new best is checkpointed) / checkpoint, as the
 *     intervals say
 *   export the final model to `output_dir`
 *
 * Determinism: batches come from the seeded sampler, and every forward draws its dropout seed from the
 * trainer's own generator, whose state goes into each checkpoint with the sampler's position; a resumed
 * run therefore repeats the interrupted one's steps exactly (same backend).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, TrainSampler, type TrainBatch } from '@kotune/data';
import { initBackend } from '@kotune/engine';
import {
  checkpointName, latestCheckpoint, readCheckpoint, removeStaleTemporaries, rotateCheckpoints, saveCheckpoint, type TrainerState,
} from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { NonFiniteLossError } from './errors.ts';
import { evaluate } from './evaluate.ts';
import { isEvalLine, MetricsLog, type EvalLogLine, type TrainLogLine } from './metrics-log.ts';
import { loadTrainModel, type TrainModel } from './model.ts';
import { microBatchGradients } from './objective.ts';
import { NonFiniteGradientError, Optimization } from './optimization.ts';
import { formatPlan, planTraining, samplerOptions } from './plan.ts';
import { writePlots } from './plots.ts';
import { Progress } from './progress.ts';
import { allFinite, resumeCheckpoint, runSignature } from './run-state.ts';

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
  const signature = runSignature(config, plan);
  const resumeDir = resumeCheckpoint(config);
  const checkpoint = resumeDir ? await readCheckpoint(resumeDir) : null;
  if (checkpoint) {
    const changed = Object.keys(signature).filter((k) => JSON.stringify(signature[k]) !== JSON.stringify(checkpoint.state.run[k]));
    if (changed.length > 0) {
      throw new Error(`cannot resume from ${resumeDir}: ${changed.map((k) =>
        `${k} was ${JSON.stringify(checkpoint.state.run[k])}, now ${JSON.stringify(signature[k])}`).join('; ')}`);
    }
  }

  // A resumed run reads the weights from its checkpoint, never the base model's.
  const model = await loadTrainModel(config, resumeDir, print);
  const parameters = model.variables();
  const optimization = new Optimization(config, parameters, plan);
  const sampler = new TrainSampler(samplerOptions(config));
  let rng = new Rng(config.seed, 0x64726f70); // dropout seeds, a stream apart from the sampler's
  let globalStep = 0;
  let bestMetric: number | null = null;
  let bestCheckpoint: string | null = null;
  let lastEval: Record<string, number> | null = null;
  const metrics = new MetricsLog(join(config.output_dir, 'metrics.jsonl'));
  if (checkpoint) {
    const { state } = checkpoint;
    await sampler.restore(state.sampler);
    optimization.load(state.optimizer as { step: number }, checkpoint.optimizerTensors, join(resumeDir!, 'optimizer.safetensors'));
    rng = Rng.fromState(state.rng);
    globalStep = state.global_step;
    bestMetric = state.best_metric;
    bestCheckpoint = state.best_model_checkpoint;
    lastEval = [...metrics.all].reverse().find((l): l is EvalLogLine => isEvalLine(l) && l.step <= globalStep)?.eval ?? null;
    print(`resumed from ${resumeDir} at step ${globalStep}`);
  }
  metrics.truncateAfter(globalStep); // lines of steps the resumed run repeats (or of an earlier run) go

  const epochNow = () => sampler.epoch + Math.min(1, sampler.state().batchesInEpoch / plan.batchesPerEpoch);
  const save = async (): Promise<void> => {
    if (!allFinite(parameters)) {
      throw new NonFiniteLossError(`step ${globalStep}: the weights hold NaN or infinite values; not saved. ${lastGood()}`);
    }
    const state: TrainerState = {
      version: 1, global_step: globalStep, epoch: epochNow(), scheduler_step: optimization.stepCount, rng: rng.state(),
      sampler: sampler.state(), optimizer: optimization.scalarState(), best_metric: bestMetric, best_model_checkpoint: bestCheckpoint, run: signature,
    };
    await saveCheckpoint(config.output_dir, { state, optimizerTensors: optimization.tensorState(), saveModel: (dir) => model.save(dir) });
    rotateCheckpoints(config.output_dir, config.save_total_limit, bestCheckpoint);
  };
  const lastGood = () => {
    const last = latestCheckpoint(config.output_dir);
    return (last ? `The last good state is ${last} (continue with --resume ${last}).` : 'No checkpoint was saved yet.') +
      ' Lower learning_rate or check the data.';
  };
  /** The next step's micro-batches; the last step of an epoch takes what is left of it (HF). */
  const stepBatches = async (): Promise<TrainBatch[]> => {
    const batches: TrainBatch[] = [];
    while (batches.length < config.gradient_accumulation_steps) {
      const batch = await sampler.next(); // undefined: the epoch is over, the sampler stands at the next one
      if (batch) batches.push(batch);
      else if (batches.length > 0) break;
    }
    return batches;
  };

  const progress = new Progress({ totalSteps: plan.totalSteps, startStep: globalStep, stream: options.progressStream });
  let window = { loss: 0, steps: 0, samples: 0, started: performance.now() };
  let lastLoss = NaN;

  try {
    while (globalStep < plan.totalSteps) {
      const batches = await stepBatches();
      optimization.begin(batches.length);
      let stepLoss = 0;
      for (const batch of batches) {
        const { loss, grads } = microBatchGradients(config, model, batch, rng, parameters);
        optimization.add(grads);
        stepLoss += loss / batches.length;
      }
      if (!Number.isFinite(stepLoss)) {
        throw new NonFiniteLossError(`step ${globalStep + 1}: the loss is ${stepLoss}; training stopped before the update. ${lastGood()}`);
      }
      let learningRate: number;
      let gradNorm: number;
      try {
        ({ learningRate, gradNorm } = optimization.step());
      } catch (error) {
        if (!(error instanceof NonFiniteGradientError)) throw error;
        throw new NonFiniteLossError(`step ${globalStep + 1}: ${error.message}; training stopped before the update. ${lastGood()}`);
      }
      globalStep += 1;
      lastLoss = stepLoss;
      const samples = batches.reduce((n, b) => n + b.queries.length, 0);
      window = { ...window, loss: window.loss + stepLoss, steps: window.steps + 1, samples: window.samples + samples };
      const seconds = (performance.now() - window.started) / 1000;
      progress.update(globalStep, { loss: stepLoss, learningRate, samplesPerSecond: window.samples / seconds });
      options.onStep?.(globalStep, stepLoss);

      const last = globalStep === plan.totalSteps;
      if (globalStep % plan.logEvery === 0 || last) {
        const line: TrainLogLine = {
          step: globalStep, epoch: +epochNow().toFixed(4), loss: window.loss / window.steps, learning_rate: learningRate,
          grad_norm: gradNorm, samples_per_second: window.samples / seconds,
        };
        metrics.append(line);
        progress.line(`step ${line.step}/${plan.totalSteps} epoch ${line.epoch} loss ${line.loss.toFixed(4)} ` +
          `lr ${line.learning_rate.toExponential(3)} grad_norm ${line.grad_norm.toFixed(3)} ${line.samples_per_second.toFixed(1)} samples/s`);
        writePlots(config.output_dir, metrics.all);
        window = { loss: 0, steps: 0, samples: 0, started: performance.now() };
      }
      let saved = false;
      if (plan.evalSet && (globalStep % plan.evalEvery === 0 || last)) {
        lastEval = await evaluate(config, model, plan.evalSet);
        metrics.append({ step: globalStep, eval: lastEval });
        const shown = new Set(['mrr@10', 'ndcg@10', 'accuracy@1', 'accuracy@5', config.metric_for_best_model]);
        progress.line(`eval step ${globalStep}: ${Object.entries(lastEval).filter(([k]) => shown.has(k)).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
        writePlots(config.output_dir, metrics.all);
        const value = lastEval[config.metric_for_best_model];
        if (value === undefined) {
          throw new Error(`metric_for_best_model "${config.metric_for_best_model}" is not an eval metric; they are ${Object.keys(lastEval).join(', ')}`);
        }
        if (bestMetric === null || value > bestMetric) {
          bestMetric = value;
          bestCheckpoint = checkpointName(globalStep);
          await save(); // the best state is always a checkpoint, whatever save_steps says
          saved = true;
        }
      }
      if (globalStep % plan.saveEvery === 0 && !saved) await save();
    }
  } catch (error) {
    progress.finish();
    optimization.dispose();
    model.dispose();
    throw error;
  }
  progress.finish();
  await model.save(config.output_dir);
  print(`done: ${globalStep} steps; model saved to ${config.output_dir}` +
    (bestCheckpoint ? `; best ${config.metric_for_best_model} ${bestMetric!.toFixed(4)} at ${join(config.output_dir, bestCheckpoint)}` : ''));
  optimization.dispose();
  if (!options.keepModel) model.dispose();
  return {
    outputDir: config.output_dir, globalStep, lastLoss, lastEval, bestMetric,
    bestCheckpoint: bestCheckpoint && join(config.output_dir, bestCheckpoint), ...(options.keepModel ? { model } : {}),
  };
}
