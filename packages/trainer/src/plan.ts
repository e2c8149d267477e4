/**
 * What a run will do, worked out from the config and one pass over the data (no model, no tensors): the
 * sampler settings, batches and optimizer steps per epoch, total and warmup steps. `--dry-run` prints it.
 */
import { TrainSampler, type BadLineTally, type TrainSamplerOptions } from '@kotune/data';
import { everySteps, lossKnobs, type TrainConfig } from './config.ts';
import { readEvalSet, type EvalSet } from './evaluate.ts';

export interface TrainPlan {
  trainLines: number;
  badTrainLines: BadLineTally;
  evalQueries: number;
  /** `eval_data` as the evaluations read it (null without eval_data). */
  evalSet: EvalSet | null;
  /** Batches (of `per_device_train_batch_size` queries) in the first epoch. */
  batchesPerEpoch: number;
  /** Optimizer steps per epoch: the last accumulation of an epoch may hold fewer micro-batches. */
  stepsPerEpoch: number;
  totalSteps: number;
  /** Epochs the steps cover (fractional when `max_steps` cuts one short). */
  epochs: number;
  warmupSteps: number;
  effectiveBatch: number;
  logEvery: number;
  saveEvery: number;
  evalEvery: number;
}

/** The data sampler of a run (FlagEmbedding's sampling, our streaming reader). */
export function samplerOptions(config: TrainConfig): TrainSamplerOptions {
  return {
    kind: config.task,
    paths: config.train_data,
    batchSize: config.per_device_train_batch_size,
    groupSize: config.train_group_size,
    seed: config.seed,
    shuffle: config.shuffle,
    noDuplicates: config.batch_sampler === 'no_duplicates',
    dropLast: config.dataloader_drop_last,
    skipBadLines: config.skip_bad_lines,
    knowledgeDistillation: config.knowledge_distillation,
    queryInstruction: config.query_instruction_for_retrieval,
    queryInstructionFormat: config.query_instruction_format,
    passageInstruction: config.passage_instruction_for_retrieval,
    passageInstructionFormat: config.passage_instruction_format,
  };
}

/** HF: `warmup_steps` when > 0, else `ceil(warmup_ratio * total)`. */
function warmupStepsOf(config: TrainConfig, totalSteps: number): number {
  return config.warmup_steps > 0 ? config.warmup_steps : Math.ceil(config.warmup_ratio * totalSteps);
}

/** Reads the training and evaluation files once (validating every line) and works out the schedule. */
export async function planTraining(config: TrainConfig): Promise<TrainPlan> {
  const {
    batches: batchesPerEpoch,
    lines: trainLines,
    badLines: badTrainLines,
  } = await new TrainSampler(samplerOptions(config)).countEpoch(0);
  if (trainLines === 0) throw new Error(`no usable training lines in ${config.train_data.join(', ')}`);
  if (batchesPerEpoch === 0)
    throw new Error(`the training data gives no full batch of ${config.per_device_train_batch_size} (dataloader_drop_last is on)`);
  // Read as the evaluations read it, so that a dry run rejects what training would (and accepts a reranker's
  // `candidates` lines, which are no training lines).
  const evalSet = await readEvalSet(config);

  const stepsPerEpoch = Math.ceil(batchesPerEpoch / config.gradient_accumulation_steps);
  const totalSteps = config.max_steps > 0 ? config.max_steps : Math.ceil(config.num_train_epochs * stepsPerEpoch);
  return {
    trainLines,
    badTrainLines,
    evalQueries: evalSet?.queries.length ?? 0,
    evalSet,
    batchesPerEpoch,
    stepsPerEpoch,
    totalSteps,
    epochs: totalSteps / stepsPerEpoch,
    warmupSteps: warmupStepsOf(config, totalSteps),
    effectiveBatch: config.per_device_train_batch_size * config.gradient_accumulation_steps,
    logEvery: everySteps(config.logging_steps, totalSteps),
    saveEvery: everySteps(config.save_steps, totalSteps),
    evalEvery: everySteps(config.eval_steps ?? config.logging_steps, totalSteps),
  };
}

function lossLine(config: TrainConfig): string {
  const { scale, temperature } = lossKnobs(config);
  const knobs = config.loss.startsWith('mnrl')
    ? `scale ${scale}`
    : config.loss === 'infonce'
      ? `temperature ${temperature}, in-batch negatives ${config.use_inbatch_neg ? 'on' : 'off'}`
      : '';
  const extras = [
    knobs,
    config.knowledge_distillation ? 'knowledge distillation' : '',
    config.mini_batch_size > 0 ? `GradCache mini-batch ${config.mini_batch_size}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  return `${config.loss}${extras ? ` (${extras})` : ''}`;
}

/** The plan as `--dry-run` prints it. */
export function formatPlan(config: TrainConfig, plan: TrainPlan): string {
  const model = config.model_name_or_path ?? `fresh ${JSON.stringify(config.model_config)} with tokenizer ${config.tokenizer_name_or_path}`;
  const lengths =
    config.task === 'reranker'
      ? `query ${config.query_max_len}, passage ${config.passage_max_len} (pair ${config.query_max_len + config.passage_max_len}) tokens, eval pairs ${config.max_len}`
      : `query ${config.query_max_len}, passage ${config.passage_max_len} tokens`;
  const rows: [string, string][] = [
    ['task', `${config.task}: ${model}`],
    [
      'train data',
      `${plan.trainLines} lines in ${config.train_data.join(', ')}${plan.badTrainLines.count ? ` (${plan.badTrainLines.summary()})` : ''}`,
    ],
    ['eval data', config.eval_data.length ? `${plan.evalQueries} queries in ${config.eval_data.join(', ')}` : 'none'],
    ['loss', lossLine(config)],
    [
      'batch',
      `${config.per_device_train_batch_size} queries x ${config.train_group_size} passages, ` +
        `accumulation ${config.gradient_accumulation_steps} -> effective batch ${plan.effectiveBatch} queries`,
    ],
    ['lengths', lengths],
    [
      'steps',
      `${plan.totalSteps} (${plan.batchesPerEpoch} batches = ${plan.stepsPerEpoch} steps per epoch, ${+plan.epochs.toFixed(3)} epoch${plan.epochs === 1 ? '' : 's'})`,
    ],
    [
      'schedule',
      `${config.lr_scheduler_type}, peak lr ${config.learning_rate}, warmup ${plan.warmupSteps} steps, ` +
        `weight decay ${config.weight_decay}, clip ${config.max_grad_norm}`,
    ],
    [
      'every',
      `log ${plan.logEvery}, save ${plan.saveEvery}${config.eval_data.length ? `, eval ${plan.evalEvery}` : ''} steps` +
        `${config.save_total_limit !== null ? `, keep ${config.save_total_limit} checkpoints` : ''}`,
    ],
    ['output', config.output_dir],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
