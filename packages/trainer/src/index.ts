export {
  CONFIG_KEYS,
  ConfigError,
  LOSSES,
  SCHEDULERS,
  TASK_LOSSES,
  TASKS,
  configHelp,
  everySteps,
  modelConfigHelp,
  loadTrainConfig,
  lossKnobs,
  parseOverrides,
  type ConfigKey,
  type EmbedderLoss,
  type LoadConfigOptions,
  type LossName,
  type RerankerLoss,
  type SchedulerName,
  type Task,
  type TrainConfig,
} from './config.ts';
export { formatPlan, planTraining, type TrainPlan } from './plan.ts';
export { preflight, type Preflight } from './preflight.ts';
export { largestForward, trainingMemoryOf } from './memory.ts';
export { LOCK_FILE, shellCommand, type LockHolder } from './lock.ts';
export { MetricsLog, isEvalLine, readMetricsLog, type EvalLogLine, type MetricsLine, type TrainLogLine } from './metrics-log.ts';
export { Progress, formatDuration, type ProgressOptions, type StepStats } from './progress.ts';
export { EVAL_PLOT_METRICS, PLOT_FILES, evalPlotSeries, lineChartPng, writePlots, type Series } from './plots.ts';
export {
  OPTIMIZER_FILE,
  TRAINER_STATE_FILE,
  checkpointProblems,
  latestCheckpoint,
  listCheckpoints,
  readCheckpoint,
  removeStaleTemporaries,
  rotateCheckpoints,
  saveCheckpoint,
  type CheckpointInfo,
  type TrainerState,
} from './checkpoint.ts';

import type { TrainConfig } from './config.ts';
import type { TrainOptions, TrainResult } from './train.ts';
export type { TrainOptions, TrainResult } from './train.ts';
export type { TrainModel } from './model.ts';
export { NonFiniteLossError, RunProblemsError, TrainingStoppedError } from './errors.ts';

/**
 * Runs a training (see `train.ts`). Loaded on first call so that `--dry-run` and the config helpers do not
 * load the model, the losses and TensorFlow.js.
 */
export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const { train: run } = await import('./train.ts');
  return run(config, options);
}
