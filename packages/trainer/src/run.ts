/**
 * A run's state from step to step — the model, the optimizer, the data position, the dropout generator, the
 * best evaluation — and what ties it to its checkpoints: opening a run (fresh, or restored from a checkpoint
 * so that the resumed steps repeat the interrupted ones exactly), saving a checkpoint, and the settings a
 * resumed run must share with the run it continues. docs/run-folder.md describes the folder.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, TrainSampler, type TrainBatch } from '@kotune/data';
import { tf } from '@kotune/engine';
import {
  checkpointFolders,
  checkpointProblems,
  latestCheckpoint,
  readCheckpoint,
  rotateCheckpoints,
  saveCheckpoint,
  type TrainerState,
} from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { NonFiniteLossError } from './errors.ts';
import { isEvalLine, METRICS_FILE, MetricsLog, type EvalLogLine } from './metrics-log.ts';
import { loadTrainModel, type TrainModel } from './model.ts';
import { Optimization } from './optimization.ts';
import { samplerOptions, type TrainPlan } from './plan.ts';

export interface Run {
  readonly config: TrainConfig;
  readonly plan: TrainPlan;
  readonly model: TrainModel;
  /** `model.variables()`, the tensors the optimizer updates. */
  readonly parameters: Map<string, tf.Variable>;
  readonly optimization: Optimization;
  readonly sampler: TrainSampler;
  /** Dropout seeds, one per forward: a stream apart from the sampler's. */
  rng: Rng;
  /** Optimizer steps done. */
  globalStep: number;
  bestMetric: number | null;
  /** Folder name (`checkpoint-<step>`) of the best evaluation so far. */
  bestCheckpoint: string | null;
  /** Metrics of the last evaluation. */
  lastEval: Record<string, number> | null;
  /** The newest checkpoint this run saved or resumed from. */
  saved: { step: number; path: string } | null;
  readonly metrics: MetricsLog;
  /** Settings a resumed run must share with this one (`trainer_state.json`'s `run`). */
  readonly signature: Record<string, unknown>;
}

/** The dropout generator's stream number (`Rng(seed, stream)`), so that its draws are not the sampler's. */
const DROPOUT_STREAM = 0x64726f70;

const SHARED_KEYS = [
  'task',
  'loss',
  'seed',
  'learning_rate',
  'per_device_train_batch_size',
  'gradient_accumulation_steps',
  'train_group_size',
  'query_max_len',
  'passage_max_len',
  'weight_decay',
  'max_grad_norm',
  'lr_scheduler_type',
  'temperature',
  'scale',
  'use_inbatch_neg',
  'mini_batch_size',
  'knowledge_distillation',
  'dropout',
  'shuffle',
  'batch_sampler',
  'query_instruction_for_retrieval',
  'passage_instruction_for_retrieval',
] as const satisfies readonly (keyof TrainConfig)[];

/** Settings a resumed run must share with its checkpoint's run (saved in `trainer_state.json` as `run`). */
export function runSignature(config: TrainConfig, plan: Pick<TrainPlan, 'totalSteps' | 'warmupSteps'>): Record<string, unknown> {
  return { ...Object.fromEntries(SHARED_KEYS.map((k) => [k, config[k]])), total_steps: plan.totalSteps, warmup_steps: plan.warmupSteps };
}

/** Settings of the signature that may change on a resume: the length of the run (to train a finished run further). */
const SCHEDULE_KEYS = ['total_steps', 'warmup_steps'];

/**
 * `resume_from_checkpoint`: true = the newest intact checkpoint of `output_dir`, a string = that folder. Each
 * candidate is checked against its `checksums.json` first (`checkpointProblems`); with `true`, a damaged one is
 * skipped with a warning naming what is wrong, and the one before it is tried. A folder given by name must be
 * intact.
 */
export async function resumeCheckpoint(config: TrainConfig, print: (line: string) => void): Promise<string | null> {
  const wanted = config.resume_from_checkpoint;
  if (wanted === null || wanted === false) return null;
  if (wanted !== true) {
    if (!existsSync(wanted)) throw new Error(`--resume ${wanted}: no such checkpoint folder`);
    const { problems, verified } = await checkpointProblems(wanted);
    if (problems.length > 0) throw new Error(`--resume ${wanted}: the checkpoint is damaged: ${problems.join('; ')}`);
    if (!verified) print(`warning: ${wanted} has no checksums.json (saved by an older kotune): its files are not verified`);
    return wanted;
  }
  const candidates = checkpointFolders(config.output_dir).reverse();
  if (candidates.length === 0) throw new Error(`--resume: no checkpoint (checkpoint-<step>/) in ${config.output_dir}`);
  const damaged: string[] = [];
  for (const { path } of candidates) {
    const { problems, verified } = await checkpointProblems(path);
    if (problems.length === 0) {
      if (!verified) print(`warning: ${path} has no checksums.json (saved by an older kotune): its files are not verified`);
      if (damaged.length > 0) print(`resuming from ${path}, the newest intact checkpoint`);
      return path;
    }
    print(`warning: skipping ${path}: ${problems.join('; ')}`);
    damaged.push(path);
  }
  throw new Error(
    `--resume: no intact checkpoint in ${config.output_dir} (${damaged.length} damaged, named above); ` +
      'start afresh with --overwrite_output_dir',
  );
}

/**
 * The run at its start: fresh, or, with `resume_from_checkpoint`, restored from that checkpoint (weights,
 * optimizer moments, schedule, data position, dropout generator, best metric). A resumed run never reads the
 * base model's weights. `metrics.jsonl` loses the lines of the steps the run is about to repeat.
 */
export async function openRun(config: TrainConfig, plan: TrainPlan, print: (line: string) => void): Promise<Run> {
  const signature = runSignature(config, plan);
  const resumeDir = await resumeCheckpoint(config, print);
  const checkpoint = resumeDir ? await readCheckpoint(resumeDir) : null;
  if (checkpoint) {
    const { run: saved, global_step: step } = checkpoint.state;
    const changed = Object.keys(signature).filter((k) => JSON.stringify(signature[k]) !== JSON.stringify(saved[k]));
    const refused = changed.filter((k) => !SCHEDULE_KEYS.includes(k));
    if (refused.length > 0) {
      throw new Error(
        `cannot resume from ${resumeDir}: ${refused.map((k) => `${k} was ${JSON.stringify(saved[k])}, now ${JSON.stringify(signature[k])}`).join('; ')}`,
      );
    }
    if (step > plan.totalSteps) {
      throw new Error(
        `cannot resume from ${resumeDir}: it is at step ${step}, past the ${plan.totalSteps} steps this run is set to; ` +
          `give max_steps (or num_train_epochs) beyond ${step}`,
      );
    }
    if (changed.length > 0) {
      print(
        `the run is now ${plan.totalSteps} steps (warmup ${plan.warmupSteps}) instead of ${saved.total_steps} (warmup ${saved.warmup_steps}): ` +
          `the ${config.lr_scheduler_type} schedule of the steps after ${step} follows the new length`,
      );
    }
  }
  const model = await loadTrainModel(config, resumeDir, print);
  const parameters = model.variables();
  const run: Run = {
    config,
    plan,
    model,
    parameters,
    optimization: new Optimization(config, parameters, plan),
    sampler: new TrainSampler(samplerOptions(config)),
    rng: new Rng(config.seed, DROPOUT_STREAM),
    globalStep: 0,
    bestMetric: null,
    bestCheckpoint: null,
    lastEval: null,
    saved: null,
    metrics: new MetricsLog(join(config.output_dir, METRICS_FILE)),
    signature,
  };
  if (checkpoint) {
    const { state } = checkpoint;
    try {
      await run.sampler.restore(state.sampler);
      run.optimization.load(state.optimizer as { step: number }, checkpoint.optimizerTensors, join(resumeDir!, 'optimizer.safetensors'));
    } catch (error) {
      run.optimization.dispose();
      model.dispose();
      throw error;
    }
    run.rng = Rng.fromState(state.rng);
    run.globalStep = state.global_step;
    run.saved = { step: state.global_step, path: resumeDir! };
    run.bestMetric = state.best_metric;
    run.bestCheckpoint = state.best_model_checkpoint;
    run.lastEval = [...run.metrics.all].reverse().find((l): l is EvalLogLine => isEvalLine(l) && l.step <= run.globalStep)?.eval ?? null;
    print(`resumed from ${resumeDir} at step ${run.globalStep}`);
  }
  run.metrics.truncateAfter(run.globalStep); // lines of steps the resumed run repeats (or of an earlier run) go
  return run;
}

/** Epochs done, fractional (HF's `epoch`). */
export function epochOf(run: Run): number {
  return run.sampler.epoch + Math.min(1, run.sampler.state().batchesInEpoch / run.plan.batchesPerEpoch);
}

/** The next step's micro-batches (`gradient_accumulation_steps`); the last step of an epoch takes what is left of it (HF). */
export async function nextStepBatches(run: Run): Promise<TrainBatch[]> {
  const batches: TrainBatch[] = [];
  while (batches.length < run.config.gradient_accumulation_steps) {
    const batch = await run.sampler.next(); // undefined: the epoch is over, the sampler stands at the next one
    if (batch) batches.push(batch);
    else if (batches.length > 0) break;
  }
  return batches;
}

/** What a stopped run's message ends with: where to continue from. */
export function lastGoodState(outputDir: string): string {
  const last = latestCheckpoint(outputDir);
  return (
    (last ? `The last good state is ${last} (continue with --resume ${last}).` : 'No checkpoint was saved yet.') +
    ' Lower learning_rate or check the data.'
  );
}

/** True when no parameter holds NaN or ±Infinity. */
function allFinite(parameters: Map<string, tf.Variable>): boolean {
  return tf.tidy(() => {
    const bad = [...parameters.values()].map((p) => tf.logicalNot(tf.isFinite(p)).any());
    return !tf.stack(bad).any().dataSync()[0];
  });
}

/** Writes `checkpoint-<globalStep>` (refusing weights that hold NaN) and applies `save_total_limit`. */
export async function saveRunCheckpoint(run: Run): Promise<void> {
  const { config, optimization } = run;
  if (!allFinite(run.parameters)) {
    throw new NonFiniteLossError(
      `step ${run.globalStep}: the weights hold NaN or infinite values; not saved. ${lastGoodState(config.output_dir)}`,
    );
  }
  const state: TrainerState = {
    version: 1,
    global_step: run.globalStep,
    epoch: epochOf(run),
    scheduler_step: optimization.stepCount,
    rng: run.rng.state(),
    sampler: run.sampler.state(),
    optimizer: optimization.scalarState(),
    best_metric: run.bestMetric,
    best_model_checkpoint: run.bestCheckpoint,
    run: run.signature,
  };
  const path = await saveCheckpoint(config.output_dir, {
    state,
    optimizerTensors: optimization.tensorState(),
    saveModel: (dir) => run.model.save(dir),
  });
  run.saved = { step: run.globalStep, path };
  rotateCheckpoints(config.output_dir, config.save_total_limit, run.bestCheckpoint);
}
