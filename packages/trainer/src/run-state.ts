/**
 * What ties a resumed run to the run it continues: the settings both must share for the steps to be the
 * same, where to resume from, and the check that the weights about to be checkpointed are sound.
 */
import { tf } from '@kotune/engine';
import { latestCheckpoint } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import type { TrainPlan } from './plan.ts';

const SHARED_KEYS = ['task', 'loss', 'seed', 'learning_rate', 'per_device_train_batch_size', 'gradient_accumulation_steps',
  'train_group_size', 'query_max_len', 'passage_max_len', 'weight_decay', 'max_grad_norm', 'lr_scheduler_type', 'temperature',
  'scale', 'use_inbatch_neg', 'mini_batch_size', 'knowledge_distillation', 'dropout', 'shuffle', 'batch_sampler',
  'query_instruction_for_retrieval', 'passage_instruction_for_retrieval'] as const;

/** Settings a resumed run must share with its checkpoint's run (saved in `trainer_state.json` as `run`). */
export function runSignature(config: TrainConfig, plan: Pick<TrainPlan, 'totalSteps' | 'warmupSteps'>): Record<string, unknown> {
  return { ...Object.fromEntries(SHARED_KEYS.map((k) => [k, config[k]])), total_steps: plan.totalSteps, warmup_steps: plan.warmupSteps };
}

/** `resume_from_checkpoint`: true = the newest complete checkpoint of `output_dir`, a string = that folder. */
export function resumeCheckpoint(config: TrainConfig): string | null {
  const wanted = config.resume_from_checkpoint;
  if (wanted === null || wanted === false) return null;
  if (wanted !== true) return wanted;
  const newest = latestCheckpoint(config.output_dir);
  if (!newest) throw new Error(`--resume: no complete checkpoint (checkpoint-<step>/ with trainer_state.json) in ${config.output_dir}`);
  return newest;
}

/** True when no parameter holds NaN or ±Infinity. */
export function allFinite(parameters: Map<string, tf.Variable>): boolean {
  return tf.tidy(() => {
    const bad = [...parameters.values()].map((p) => tf.logicalNot(tf.isFinite(p)).any());
    return !tf.stack(bad).any().dataSync()[0];
  });
}
