/**
 * Training configuration: a JSON file whose keys are the Hugging Face `TrainingArguments` and FlagEmbedding
 * argument names, plus `--key value` overrides from the command line. Defaults are theirs.
 *
 * Comments: JSON has none, so any key that starts with `_` (`"_comment"`, `"_needs"`, ...) is ignored.
 * Relative paths in the file resolve against the file's folder; relative paths given on the command line
 * resolve against the working directory. A model or tokenizer name resolves as a path only when it starts
 * with `.` or that path exists; otherwise it stays a Hugging Face repo id.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';

export const TASKS = ['reranker', 'embedder'] as const;
export const LOSSES = ['group_ce', 'bce', 'mnrl', 'mnrl_symmetric', 'infonce'] as const;
export const SCHEDULERS = ['linear', 'constant', 'constant_with_warmup', 'cosine'] as const;
export type Task = (typeof TASKS)[number];
export type LossName = (typeof LOSSES)[number];
export type SchedulerName = (typeof SCHEDULERS)[number];

export interface TrainConfig {
  task: Task;
  loss: LossName;
  model_name_or_path: string | null;
  model_config: Record<string, unknown> | null;
  tokenizer_name_or_path: string | null;
  train_data: string[];
  eval_data: string[];
  output_dir: string;
  run_name: string;
  learning_rate: number;
  num_train_epochs: number;
  max_steps: number;
  per_device_train_batch_size: number;
  per_device_eval_batch_size: number;
  gradient_accumulation_steps: number;
  gradient_checkpointing: boolean;
  train_group_size: number;
  query_max_len: number;
  passage_max_len: number;
  max_len: number;
  warmup_ratio: number;
  warmup_steps: number;
  weight_decay: number;
  max_grad_norm: number;
  lr_scheduler_type: SchedulerName;
  seed: number;
  logging_steps: number;
  save_steps: number;
  save_total_limit: number | null;
  eval_steps: number | null;
  metric_for_best_model: string;
  temperature: number | null;
  scale: number | null;
  use_inbatch_neg: boolean;
  mini_batch_size: number;
  query_instruction_for_retrieval: string | null;
  query_instruction_format: string;
  passage_instruction_for_retrieval: string | null;
  passage_instruction_format: string;
  sentence_pooling_method: 'cls' | 'mean' | null;
  normalize_embeddings: boolean;
  knowledge_distillation: boolean;
  batch_sampler: 'batch_sampler' | 'no_duplicates' | null;
  dataloader_drop_last: boolean;
  shuffle: boolean;
  skip_bad_lines: boolean;
  dropout: number | null;
  backend: string | null;
  resume_from_checkpoint: string | boolean | null;
}

export type ConfigKey = keyof TrainConfig;

type ValueType = 'string' | 'int' | 'number' | 'boolean' | 'paths' | 'object' | 'path-or-bool' | readonly string[];

interface KeySpec {
  type: ValueType;
  /** `null` is accepted (and is the default unless `default` says otherwise). */
  nullable?: boolean;
  /** Resolved against the config file's folder (or the working directory for command-line values). */
  path?: 'path' | 'name-or-path';
  min?: number;
  /** The bound `min` is excluded. */
  minExclusive?: boolean;
  max?: number;
  help: string;
}

/** Every key, in the order `--help` lists them. Defaults live in `DEFAULTS` below. */
export const CONFIG_KEYS: Record<ConfigKey, KeySpec> = {
  task: { type: TASKS, help: 'reranker (cross-encoder) or embedder (bi-encoder)' },
  loss: { type: LOSSES, nullable: true, help: 'group_ce | bce (reranker, default group_ce); mnrl | mnrl_symmetric | infonce (embedder, default mnrl)' },
  model_name_or_path: { type: 'string', nullable: true, path: 'name-or-path', help: 'pretrained model: folder, HF cache repo id' },
  model_config: { type: 'object', nullable: true, help: 'fresh random init instead: {hidden_size, num_hidden_layers, ...} (with tokenizer_name_or_path)' },
  tokenizer_name_or_path: { type: 'string', nullable: true, path: 'name-or-path', help: 'tokenizer folder or repo id (default: the model\'s)' },
  train_data: { type: 'paths', path: 'path', help: 'training JSONL file(s) of {query, pos, neg}' },
  eval_data: { type: 'paths', path: 'path', help: 'evaluation JSONL file(s) of {query, pos, neg} (default none)' },
  output_dir: { type: 'string', nullable: true, path: 'path', help: 'run folder (default checkpoints/<run_name> under the working directory)' },
  run_name: { type: 'string', nullable: true, help: 'run name (default: the config file name)' },
  learning_rate: { type: 'number', min: 0, minExclusive: true, help: 'peak learning rate' },
  num_train_epochs: { type: 'number', min: 0, minExclusive: true, help: 'epochs (fractions allowed); ignored when max_steps > 0' },
  max_steps: { type: 'int', min: -1, help: 'optimizer steps; -1 = from num_train_epochs' },
  per_device_train_batch_size: { type: 'int', min: 1, help: 'queries per micro-batch' },
  per_device_eval_batch_size: { type: 'int', min: 1, help: 'texts or pairs per evaluation forward' },
  gradient_accumulation_steps: { type: 'int', min: 1, help: 'micro-batches per optimizer step' },
  gradient_checkpointing: { type: 'boolean', help: 'keep only each encoder layer\'s input and recompute the layer in the backward: much less memory for longer sequences or bigger batches, ~1/3 more time per step' },
  train_group_size: { type: 'int', min: 1, help: 'passages per query: 1 positive + (G-1) negatives' },
  query_max_len: { type: 'int', min: 1, help: 'query tokens kept' },
  passage_max_len: { type: 'int', min: 1, help: 'passage tokens kept' },
  max_len: { type: 'int', min: 4, help: 'reranker pair length at evaluation, special tokens included (training pairs hold query_max_len + passage_max_len)' },
  warmup_ratio: { type: 'number', min: 0, max: 1, help: 'warmup as a fraction of the steps' },
  warmup_steps: { type: 'int', min: 0, help: 'warmup steps (overrides warmup_ratio when > 0)' },
  weight_decay: { type: 'number', min: 0, help: 'AdamW decoupled weight decay (not on biases and LayerNorm)' },
  max_grad_norm: { type: 'number', min: 0, help: 'gradient clipping norm (0 = off)' },
  lr_scheduler_type: { type: SCHEDULERS, help: 'learning-rate schedule' },
  seed: { type: 'int', min: 0, help: 'seed of sampling, dropout and fresh inits' },
  logging_steps: { type: 'number', min: 0, minExclusive: true, help: 'log every N steps (< 1: a fraction of the steps)' },
  save_steps: { type: 'number', min: 0, minExclusive: true, help: 'checkpoint every N steps (< 1: a fraction of the steps)' },
  save_total_limit: { type: 'int', nullable: true, min: 1, help: 'checkpoints kept (the best one is kept too); default all' },
  eval_steps: { type: 'number', nullable: true, min: 0, minExclusive: true, help: 'evaluate every N steps (default logging_steps)' },
  metric_for_best_model: { type: 'string', help: 'eval metric that picks the best checkpoint (higher is better)' },
  temperature: { type: 'number', nullable: true, min: 0, minExclusive: true, help: 'infonce temperature (default 0.02); for mnrl, scale = 1/temperature' },
  scale: { type: 'number', nullable: true, min: 0, minExclusive: true, help: 'mnrl / mnrl_symmetric similarity scale (default 20)' },
  use_inbatch_neg: { type: 'boolean', help: 'infonce: other queries\' passages are negatives too' },
  mini_batch_size: { type: 'int', min: 0, help: 'GradCache mini-batch (cached MNRL) when > 0' },
  query_instruction_for_retrieval: { type: 'string', nullable: true, help: 'instruction put before every query' },
  query_instruction_format: { type: 'string', help: 'format with two {}: instruction, query' },
  passage_instruction_for_retrieval: { type: 'string', nullable: true, help: 'instruction put before every passage' },
  passage_instruction_format: { type: 'string', help: 'format with two {}: instruction, passage' },
  sentence_pooling_method: { type: ['cls', 'mean'], nullable: true, help: 'embedder pooling (default: the model folder\'s, else cls)' },
  normalize_embeddings: { type: 'boolean', help: 'embedder: L2-normalise the embeddings' },
  knowledge_distillation: { type: 'boolean', help: 'train on the lines\' pos_scores / neg_scores' },
  batch_sampler: { type: ['batch_sampler', 'no_duplicates'], nullable: true, help: 'no_duplicates keeps copies of a text out of one batch (default: embedders no_duplicates)' },
  dataloader_drop_last: { type: 'boolean', help: 'drop incomplete batches' },
  shuffle: { type: 'boolean', help: 'shuffle the training lines' },
  skip_bad_lines: { type: 'boolean', help: 'skip malformed lines (counted) instead of stopping' },
  dropout: { type: 'number', nullable: true, min: 0, max: 1, help: 'hidden and attention dropout (0 = off; default: the model config\'s)' },
  backend: { type: 'string', nullable: true, help: 'tensorflow-gpu | tensorflow | wasm | cpu' },
  resume_from_checkpoint: { type: 'path-or-bool', nullable: true, path: 'path', help: 'true = newest checkpoint in output_dir, or a checkpoint folder' },
};

/** HF `TrainingArguments` / FlagEmbedding defaults; `null` entries are filled in by `finish()`. */
const DEFAULTS: Omit<TrainConfig, 'task' | 'train_data'> = {
  loss: null as unknown as LossName,
  model_name_or_path: null,
  model_config: null,
  tokenizer_name_or_path: null,
  eval_data: [],
  output_dir: null as unknown as string,
  run_name: null as unknown as string,
  learning_rate: 5e-5,
  num_train_epochs: 3,
  max_steps: -1,
  per_device_train_batch_size: 8,
  per_device_eval_batch_size: 8,
  gradient_accumulation_steps: 1,
  gradient_checkpointing: false,
  train_group_size: 8,
  query_max_len: 32,
  passage_max_len: 128,
  max_len: 512,
  warmup_ratio: 0,
  warmup_steps: 0,
  weight_decay: 0,
  max_grad_norm: 1,
  lr_scheduler_type: 'linear',
  seed: 42,
  logging_steps: 500,
  save_steps: 500,
  save_total_limit: null,
  eval_steps: null,
  metric_for_best_model: 'ndcg@10',
  temperature: null,
  scale: null,
  use_inbatch_neg: true,
  mini_batch_size: 0,
  query_instruction_for_retrieval: null,
  query_instruction_format: '{}{}',
  passage_instruction_for_retrieval: null,
  passage_instruction_format: '{}{}',
  sentence_pooling_method: null,
  normalize_embeddings: true,
  knowledge_distillation: false,
  batch_sampler: null,
  dataloader_drop_last: false,
  shuffle: true,
  skip_bad_lines: false,
  dropout: null,
  backend: null,
  resume_from_checkpoint: null,
};

const RERANKER_LOSSES: readonly LossName[] = ['group_ce', 'bce'];

/** A mistake in the configuration; the message names the file (or `command line`) and the key. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function validKeysList(): string {
  return `valid keys: ${Object.keys(CONFIG_KEYS).join(', ')} (keys starting with "_" are comments)`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function expected(type: ValueType, nullable: boolean | undefined): string {
  const base = Array.isArray(type) ? `one of ${type.join(' | ')}`
    : { string: 'a string', int: 'an integer', number: 'a number', boolean: 'true or false', paths: 'a path or a list of paths',
      object: 'an object', 'path-or-bool': 'true, false or a checkpoint path' }[type as string];
  return nullable ? `${base} or null` : base!;
}

/** Checks one value against its key's spec and returns it normalised (paths resolved against `baseDir`). */
function checkValue(key: ConfigKey, value: unknown, where: string, baseDir: string): unknown {
  const spec = CONFIG_KEYS[key];
  const fail = (detail?: string): never => {
    throw new ConfigError(`${where}: ${key} must be ${expected(spec.type, spec.nullable)}, got ${describe(value)}${detail ? ` (${detail})` : ''}`);
  };
  if (value === null) return spec.nullable ? null : fail();
  const resolvePath = (p: string) => {
    if (spec.path === 'path' || p.startsWith('.') || existsSync(resolve(baseDir, p))) return isAbsolute(p) ? p : resolve(baseDir, p);
    return p;
  };
  const { type } = spec;
  if (Array.isArray(type)) {
    if (typeof value !== 'string' || !type.includes(value)) fail();
    return value;
  }
  switch (type) {
    case 'string':
      if (typeof value !== 'string') fail();
      return spec.path ? resolvePath(value as string) : value;
    case 'int':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail();
      const n = value as number;
      if (type === 'int' && !Number.isInteger(n)) fail();
      if (spec.min !== undefined && (spec.minExclusive ? n <= spec.min : n < spec.min)) fail(`must be ${spec.minExclusive ? '>' : '>='} ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) fail(`must be <= ${spec.max}`);
      return n;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail();
      return value;
    case 'paths': {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || list.some((p) => typeof p !== 'string' || p === '')) fail();
      return (list as string[]).map(resolvePath);
    }
    case 'object':
      if (typeof value !== 'object' || Array.isArray(value)) fail();
      return value;
    case 'path-or-bool':
      if (typeof value === 'boolean') return value;
      if (typeof value !== 'string' || value === '') fail();
      return resolvePath(value as string);
  }
  return fail();
}

/** Converts a command-line string to the key's type (`--seed 7` → 7, `--shuffle false` → false). */
function parseOverrideValue(key: ConfigKey, text: string | true): unknown {
  const { type, nullable } = CONFIG_KEYS[key];
  if (text === true) {
    if (type === 'boolean' || type === 'path-or-bool') return true;
    throw new ConfigError(`command line: --${key} needs a value (${expected(type, nullable)})`);
  }
  if (nullable && text === 'null') return null;
  if (Array.isArray(type) || type === 'string') return text;
  if (type === 'int' || type === 'number') {
    const n = text.trim() === '' ? NaN : Number(text);
    return Number.isNaN(n) ? text : n;
  }
  if (type === 'boolean' || type === 'path-or-bool') {
    if (text === 'true') return true;
    if (text === 'false') return false;
    return text;
  }
  if (type === 'object' || (type === 'paths' && text.trimStart().startsWith('['))) {
    try {
      return JSON.parse(text);
    } catch {
      throw new ConfigError(`command line: --${key} must be JSON (${expected(type, nullable)}), got ${JSON.stringify(text)}`);
    }
  }
  return text;
}

/**
 * Splits `--key value` / `--key=value` pairs into raw override values. A boolean key may stand alone
 * (`--shuffle`); a `paths` key given twice accumulates (`--train_data a.jsonl --train_data b.jsonl`).
 */
export function parseOverrides(argv: readonly string[]): Partial<Record<ConfigKey, unknown>> {
  const out: Partial<Record<ConfigKey, unknown>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new ConfigError(`command line: unexpected argument ${JSON.stringify(arg)} (overrides are --key value)`);
    const eq = arg.indexOf('=');
    const name = (eq === -1 ? arg.slice(2) : arg.slice(2, eq)).replaceAll('-', '_');
    if (!(name in CONFIG_KEYS)) throw new ConfigError(`command line: unknown key --${name}; ${validKeysList()}`);
    const key = name as ConfigKey;
    let text: string | true;
    if (eq !== -1) text = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) text = argv[++i];
    else text = true;
    const value = parseOverrideValue(key, text);
    if (CONFIG_KEYS[key].type === 'paths' && key in out) {
      out[key] = [...([] as unknown[]).concat(out[key]), ...([] as unknown[]).concat(value)];
    } else out[key] = value;
  }
  return out;
}

export interface LoadConfigOptions {
  /** Raw `--key value` overrides (from `parseOverrides`), applied after the file; paths resolve against `cwd`. */
  overrides?: Partial<Record<ConfigKey, unknown>>;
  cwd?: string;
}

/**
 * Reads, checks and completes a training config. `path` may be null when everything comes from overrides.
 * Throws `ConfigError` for unknown keys (listing the valid ones), wrong types, and contradictions.
 */
export function loadTrainConfig(path: string | null, options: LoadConfigOptions = {}): TrainConfig {
  const cwd = options.cwd ?? process.cwd();
  const raw: Partial<Record<ConfigKey, unknown>> = {};
  if (path !== null) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new ConfigError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
    } catch (error) {
      throw new ConfigError(`${path}: not valid JSON (${(error as Error).message})`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError(`${path}: expected a JSON object of settings, got ${describe(parsed)}`);
    }
    const baseDir = dirname(resolve(cwd, path));
    for (const [key, value] of Object.entries(parsed)) {
      if (key.startsWith('_')) continue;
      if (!(key in CONFIG_KEYS)) throw new ConfigError(`${path}: unknown key "${key}"; ${validKeysList()}`);
      raw[key as ConfigKey] = checkValue(key as ConfigKey, value, path, baseDir);
    }
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    raw[key as ConfigKey] = checkValue(key as ConfigKey, value, 'command line', cwd);
  }
  const runName = (raw.run_name as string | null | undefined) ?? (path ? basename(path, extname(path)) : 'run');
  return finish({ ...DEFAULTS, ...raw, run_name: runName } as TrainConfig, path ?? 'command line', cwd);
}

/** Fills the task-dependent defaults and rejects contradictory settings. */
function finish(config: TrainConfig, where: string, cwd: string): TrainConfig {
  const fail = (message: string): never => {
    throw new ConfigError(`${where}: ${message}`);
  };
  if ((config.task as unknown) === undefined) fail(`task is required (${TASKS.join(' | ')})`);
  if ((config.train_data as unknown) === undefined || config.train_data.length === 0) fail('train_data is required');
  config.loss ??= config.task === 'reranker' ? 'group_ce' : 'mnrl';
  if (RERANKER_LOSSES.includes(config.loss) !== (config.task === 'reranker')) {
    fail(`loss ${config.loss} is for ${config.task === 'reranker' ? 'embedders' : 'rerankers'}; a ${config.task} takes ` +
      (config.task === 'reranker' ? RERANKER_LOSSES : LOSSES.filter((l) => !RERANKER_LOSSES.includes(l))).join(' | '));
  }
  if (config.model_name_or_path !== null && config.model_config !== null) fail('give model_name_or_path or model_config, not both');
  if (config.model_name_or_path === null) {
    if (config.model_config === null) fail('model_name_or_path is required (or model_config with tokenizer_name_or_path for a fresh model)');
    if (config.tokenizer_name_or_path === null) fail('model_config needs tokenizer_name_or_path');
  }
  if (config.loss === 'group_ce' && config.train_group_size < 2) fail('group_ce needs train_group_size >= 2 (a positive and a negative)');
  if (config.scale !== null && config.temperature !== null) fail('give scale or temperature, not both (scale = 1 / temperature)');
  if (config.scale !== null && !config.loss.startsWith('mnrl')) fail(`scale is for mnrl / mnrl_symmetric, not ${config.loss}`);
  if (config.temperature !== null && !['mnrl', 'mnrl_symmetric', 'infonce'].includes(config.loss)) {
    fail(`temperature is for the embedder losses, not ${config.loss}`);
  }
  if (config.mini_batch_size > 0 && config.task !== 'embedder') fail('mini_batch_size (GradCache) is for embedders');
  if (config.knowledge_distillation && config.task === 'embedder' && config.loss !== 'infonce') {
    fail(`knowledge_distillation for embedders goes with loss infonce (FlagEmbedding's kl_div over its scores), not ${config.loss}`);
  }
  if (config.eval_steps === null) config.eval_steps = config.logging_steps;
  if (config.task === 'embedder' && config.batch_sampler === null) config.batch_sampler = 'no_duplicates';
  if (config.task === 'reranker' && config.batch_sampler === null) config.batch_sampler = 'batch_sampler';
  config.output_dir ??= resolve(cwd, 'checkpoints', config.run_name);
  return config;
}

/** `scale` of mnrl / mnrl_symmetric, `temperature` of infonce, as INTERFACE.md defines them. */
export function lossKnobs(config: TrainConfig): { scale: number; temperature: number } {
  const temperature = config.temperature ?? 0.02;
  const scale = config.scale ?? (config.temperature !== null ? 1 / config.temperature : 20);
  return { scale, temperature };
}

/** HF's `logging_steps` / `save_steps` / `eval_steps`: a value below 1 is a fraction of the total steps. */
export function everySteps(value: number, totalSteps: number): number {
  return value < 1 ? Math.max(1, Math.ceil(value * totalSteps)) : Math.round(value);
}

/** The `kotune train --help` table of keys. */
export function configHelp(): string {
  const width = Math.max(...Object.keys(CONFIG_KEYS).map((k) => k.length));
  return Object.entries(CONFIG_KEYS).map(([key, spec]) => {
    const fallback = (DEFAULTS as Record<string, unknown>)[key];
    const shown = fallback === null || fallback === undefined || (Array.isArray(fallback) && fallback.length === 0) ? '' : ` [${JSON.stringify(fallback)}]`;
    return `  ${key.padEnd(width)}  ${spec.help}${shown}`;
  }).join('\n');
}
