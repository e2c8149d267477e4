/**
 * Training configuration: a JSON file whose keys are the Hugging Face `TrainingArguments` and FlagEmbedding
 * argument names, plus `--key value` overrides from the command line. Defaults are theirs.
 *
 * Every key is defined once, in `CONFIG_KEYS` (type, default, allowed values, help); the `TrainConfig` type,
 * the defaults, the checks and `kotune train --help` all come from it. `model_config` (a fresh model's
 * `config.json` keys) is checked against @kotune/xlm-roberta's one definition of the XLM-R config.
 *
 * Comments: JSON has none, so any key that starts with `_` (`"_comment"`, `"_needs"`, ...) is ignored.
 * Relative paths in the file resolve against the file's folder; relative paths given on the command line
 * resolve against the working directory. A model or tokenizer name resolves as a path only when it starts
 * with `.` or that path exists; otherwise it stays a Hugging Face repo id.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import { fileErrorReason, jsonSyntaxError } from '@kotune/data';
import type { ScheduleName } from '@kotune/optim';
import {
  modelConfigFieldProblems,
  modelConfigProblems,
  XLMR_CONFIG_EXTRA_KEYS,
  XLMR_CONFIG_FIELDS,
  type XLMRobertaConfigJson,
} from '@kotune/xlm-roberta/config';

export const TASKS = ['reranker', 'embedder'] as const;
/** The losses each task takes; the first is its default. */
export const TASK_LOSSES = {
  reranker: ['group_ce', 'bce'],
  embedder: ['mnrl', 'mnrl_symmetric', 'infonce'],
} as const;
export const LOSSES = [...TASK_LOSSES.reranker, ...TASK_LOSSES.embedder] as const;
/** @kotune/optim's schedules, in the order `--help` lists them (the check below keeps the two lists equal). */
export const SCHEDULERS = ['linear', 'constant', 'constant_with_warmup', 'cosine'] as const satisfies readonly ScheduleName[];
export type Task = (typeof TASKS)[number];
export type LossName = (typeof LOSSES)[number];
export type RerankerLoss = (typeof TASK_LOSSES.reranker)[number];
export type EmbedderLoss = (typeof TASK_LOSSES.embedder)[number];
export type SchedulerName = (typeof SCHEDULERS)[number];
// Fails to compile when @kotune/optim gains a schedule this list lacks.
const everySchedule: Exclude<ScheduleName, SchedulerName> extends never ? true : never = true;
void everySchedule;

/** How a key's value is written and read. */
interface ValueTypes {
  string: string;
  int: number;
  number: number;
  boolean: boolean;
  /** One path or a list; always a list once read. */
  paths: string[];
  /** true / false, or a checkpoint folder. */
  'path-or-bool': string | boolean;
  /** A fresh model's config.json keys, checked by @kotune/xlm-roberta. */
  'model-config': XLMRobertaConfigJson;
}
type ValueType = keyof ValueTypes | readonly string[];

/** A default that depends on other keys; `DERIVED_DEFAULTS` computes it, `help` says what it is. */
interface Derived {
  derived: string;
}
const derived = (help: string): Derived => ({ derived: help });

interface KeySpec {
  type: ValueType;
  /** Absent: the key is required. A `Derived` default is filled in from the other keys. */
  default?: unknown;
  /** `null` is a value with a meaning of its own (said in `help`), e.g. "the model's own". */
  nullable?: true;
  /** Resolved against the config file's folder (or the working directory for command-line values). */
  path?: 'path' | 'name-or-path';
  min?: number;
  /** The bound `min` is excluded. */
  minExclusive?: true;
  max?: number;
  help: string;
}

/** Every key, in the order `--help` lists them. */
export const CONFIG_KEYS = {
  task: { type: TASKS, help: 'a cross-encoder reranker or a bi-encoder embedder' },
  loss: {
    type: LOSSES,
    default: derived('group_ce for rerankers, mnrl for embedders'),
    help: `training objective (rerankers take ${TASK_LOSSES.reranker.join(' or ')}, embedders the others)`,
  },
  model_name_or_path: {
    type: 'string',
    default: null,
    nullable: true,
    path: 'name-or-path',
    help: 'pretrained model: folder, HF cache repo id',
  },
  model_config: {
    type: 'model-config',
    default: null,
    nullable: true,
    help: 'fresh random init instead: config.json keys {hidden_size, num_hidden_layers, ...} or a config.json file (with tokenizer_name_or_path)',
  },
  tokenizer_name_or_path: {
    type: 'string',
    default: null,
    nullable: true,
    path: 'name-or-path',
    help: "tokenizer folder or repo id (default: the model's)",
  },
  train_data: { type: 'paths', path: 'path', help: 'training JSONL file(s) of {query, pos, neg}' },
  eval_data: { type: 'paths', default: [], path: 'path', help: 'evaluation JSONL file(s) of {query, pos, neg} (default none)' },
  output_dir: { type: 'string', default: derived('checkpoints/<run_name> under the working directory'), path: 'path', help: 'run folder' },
  overwrite_output_dir: {
    type: 'boolean',
    default: false,
    help: "a fresh run into an output_dir that holds a run deletes that run's checkpoints, metrics, plots and model first (without it, such a run stops)",
  },
  run_name: { type: 'string', default: derived('the config file\'s name, else "run"'), help: 'run name' },
  learning_rate: { type: 'number', default: 5e-5, min: 0, minExclusive: true, help: 'peak learning rate' },
  num_train_epochs: {
    type: 'number',
    default: 3,
    min: 0,
    minExclusive: true,
    help: 'epochs (fractions allowed); ignored when max_steps > 0',
  },
  max_steps: { type: 'int', default: -1, min: -1, help: 'optimizer steps; -1 = from num_train_epochs' },
  per_device_train_batch_size: { type: 'int', default: 8, min: 1, help: 'queries per micro-batch' },
  per_device_eval_batch_size: { type: 'int', default: 8, min: 1, help: 'texts or pairs per evaluation forward' },
  gradient_accumulation_steps: { type: 'int', default: 1, min: 1, help: 'micro-batches per optimizer step' },
  gradient_checkpointing: {
    type: 'boolean',
    default: false,
    help: "keep only each encoder layer's input and recompute the layer in the backward: much less memory for longer sequences or bigger batches, ~1/3 more time per step",
  },
  train_group_size: { type: 'int', default: 8, min: 1, help: 'passages per query: 1 positive + (G-1) negatives' },
  query_max_len: { type: 'int', default: 32, min: 1, help: 'query tokens kept' },
  passage_max_len: { type: 'int', default: 128, min: 1, help: 'passage tokens kept' },
  max_len: {
    type: 'int',
    default: 512,
    min: 4,
    help: 'reranker pair length at evaluation, special tokens included (training pairs hold query_max_len + passage_max_len)',
  },
  warmup_ratio: { type: 'number', default: 0, min: 0, max: 1, help: 'warmup as a fraction of the steps' },
  warmup_steps: { type: 'int', default: 0, min: 0, help: 'warmup steps (overrides warmup_ratio when > 0)' },
  weight_decay: { type: 'number', default: 0, min: 0, help: 'AdamW decoupled weight decay (not on biases and LayerNorm)' },
  max_grad_norm: { type: 'number', default: 1, min: 0, help: 'gradient clipping norm (0 = off)' },
  lr_scheduler_type: { type: SCHEDULERS, default: 'linear', help: 'learning-rate schedule' },
  seed: { type: 'int', default: 42, min: 0, help: 'seed of sampling, dropout and fresh inits' },
  logging_steps: { type: 'number', default: 500, min: 0, minExclusive: true, help: 'log every N steps (< 1: a fraction of the steps)' },
  save_steps: { type: 'number', default: 500, min: 0, minExclusive: true, help: 'checkpoint every N steps (< 1: a fraction of the steps)' },
  save_total_limit: { type: 'int', default: null, nullable: true, min: 1, help: 'checkpoints kept (the best one is kept too); null = all' },
  eval_steps: {
    type: 'number',
    default: derived('logging_steps'),
    min: 0,
    minExclusive: true,
    help: 'evaluate every N steps (< 1: a fraction of the steps)',
  },
  metric_for_best_model: { type: 'string', default: 'ndcg@10', help: 'eval metric that picks the best checkpoint (higher is better)' },
  temperature: {
    type: 'number',
    default: null,
    nullable: true,
    min: 0,
    minExclusive: true,
    help: 'infonce temperature (null = 0.02); for mnrl, scale = 1/temperature',
  },
  scale: {
    type: 'number',
    default: null,
    nullable: true,
    min: 0,
    minExclusive: true,
    help: 'mnrl / mnrl_symmetric similarity scale (null = 20, or 1/temperature)',
  },
  use_inbatch_neg: { type: 'boolean', default: true, help: "infonce: other queries' passages are negatives too" },
  mini_batch_size: { type: 'int', default: 0, min: 0, help: 'GradCache mini-batch (cached MNRL) when > 0' },
  query_instruction_for_retrieval: { type: 'string', default: null, nullable: true, help: 'instruction put before every query' },
  query_instruction_format: { type: 'string', default: '{}{}', help: 'format with two {}: instruction, query' },
  passage_instruction_for_retrieval: { type: 'string', default: null, nullable: true, help: 'instruction put before every passage' },
  passage_instruction_format: { type: 'string', default: '{}{}', help: 'format with two {}: instruction, passage' },
  sentence_pooling_method: {
    type: ['cls', 'mean'],
    default: null,
    nullable: true,
    help: "embedder pooling (null = the model folder's, else cls)",
  },
  normalize_embeddings: { type: 'boolean', default: true, help: 'embedder: L2-normalise the embeddings' },
  knowledge_distillation: { type: 'boolean', default: false, help: "train on the lines' pos_scores / neg_scores" },
  batch_sampler: {
    type: ['batch_sampler', 'no_duplicates'],
    default: derived('no_duplicates for embedders, batch_sampler for rerankers'),
    help: 'no_duplicates keeps copies of a text out of one batch',
  },
  dataloader_drop_last: { type: 'boolean', default: false, help: 'drop incomplete batches' },
  shuffle: { type: 'boolean', default: true, help: 'shuffle the training lines' },
  skip_bad_lines: { type: 'boolean', default: false, help: 'skip malformed lines (counted) instead of stopping' },
  dropout: {
    type: 'number',
    default: null,
    nullable: true,
    min: 0,
    max: 1,
    help: "hidden and attention dropout (0 = off; null = the model config's)",
  },
  // A string, not a choice: @kotune/engine also takes aliases (gpu, node) and names the valid ones.
  backend: {
    type: 'string',
    default: null,
    nullable: true,
    help: 'tensorflow-gpu | tensorflow | wasm | cpu (null = the first that loads)',
  },
  resume_from_checkpoint: {
    type: 'path-or-bool',
    default: null,
    nullable: true,
    path: 'path',
    help: 'true = newest checkpoint in output_dir, or a checkpoint folder',
  },
} as const satisfies Record<string, KeySpec>;

type Schema = typeof CONFIG_KEYS;
export type ConfigKey = keyof Schema;
type ValueOf<S extends KeySpec> =
  | (S['type'] extends readonly (infer Choice)[] ? Choice : S['type'] extends keyof ValueTypes ? ValueTypes[S['type']] : never)
  | (S extends { nullable: true } ? null : never);

/** A complete configuration: every key of `CONFIG_KEYS` with its value type. */
export type TrainConfig = { -readonly [K in ConfigKey]: ValueOf<Schema[K]> };

type DerivedKey = { [K in ConfigKey]: Schema[K] extends { default: Derived } ? K : never }[ConfigKey];

/** The derived defaults, from the other keys (already checked) and the config file's path. */
const DERIVED_DEFAULTS: { [K in DerivedKey]: (config: TrainConfig, source: { path: string | null; cwd: string }) => TrainConfig[K] } = {
  loss: (c) => TASK_LOSSES[c.task][0],
  run_name: (_, { path }) => (path ? basename(path, extname(path)) : 'run'),
  output_dir: (c, { cwd }) => resolve(cwd, 'checkpoints', c.run_name),
  eval_steps: (c) => c.logging_steps,
  batch_sampler: (c) => (c.task === 'embedder' ? 'no_duplicates' : 'batch_sampler'),
};

function isDerived(value: unknown): value is Derived {
  return value !== null && typeof value === 'object' && 'derived' in value;
}

const specOf = (key: ConfigKey): KeySpec => CONFIG_KEYS[key];
/** `null` stands for the default where the default is derived (`"eval_steps": null`), as HF's `None`. */
const acceptsNull = (spec: KeySpec): boolean => spec.nullable === true || isDerived(spec.default);
const isKey = (name: string): name is ConfigKey => Object.hasOwn(CONFIG_KEYS, name);

/** Mistakes in the configuration; the message names the file (or `command line`) and the key of each. */
export class ConfigError extends Error {
  /** Every problem found, one sentence each; the message joins them. */
  readonly problems: string[];

  constructor(problems: string | string[]) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('\n'));
    this.name = 'ConfigError';
    this.problems = list;
  }
}

function validKeysList(): string {
  return `valid keys: ${Object.keys(CONFIG_KEYS).join(', ')} (keys starting with "_" are comments)`;
}

/** Edit distance with transpositions (optimal string alignment): `hiden_size` is 1 from `hidden_size`. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate a mistyped `name` most likely meant (case and `-` ignored; at most a third of it wrong), or null. */
export function didYouMean(name: string, candidates: readonly string[]): string | null {
  const norm = (text: string) => text.toLowerCase().replaceAll('-', '_');
  let best: { candidate: string; distance: number } | null = null;
  for (const candidate of candidates) {
    const distance = editDistance(norm(name), norm(candidate));
    if (distance <= Math.max(1, Math.floor(candidate.length / 3)) && (best === null || distance < best.distance))
      best = { candidate, distance };
  }
  return best?.candidate ?? null;
}

/** `unknown key "learning_rat" (did you mean "learning_rate"?)`, else the list of valid keys. */
function unknownKey(shown: string, name: string): string {
  const guess = didYouMean(name, Object.keys(CONFIG_KEYS));
  return guess
    ? `unknown key ${shown} (did you mean ${shown.startsWith('--') ? `--${guess}` : `"${guess}"`}?)`
    : `unknown key ${shown}; ${validKeysList()}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function expected(spec: KeySpec): string {
  const { type } = spec;
  const base =
    typeof type !== 'string'
      ? `one of ${type.join(' | ')}`
      : {
          string: 'a string',
          int: 'an integer',
          number: 'a number',
          boolean: 'true or false',
          paths: 'a path or a list of paths',
          'path-or-bool': 'true, false or a checkpoint path',
          'model-config': 'an object of config.json keys or the path of a config.json file',
        }[type];
  return acceptsNull(spec) ? `${base} or null` : base;
}

/**
 * Checks one value against its key's spec: returns it normalised (paths resolved against `baseDir`), or the
 * sentences saying what is wrong with it.
 */
function checkValue(key: ConfigKey, value: unknown, where: string, baseDir: string): { value: unknown } | { problems: string[] } {
  const spec = specOf(key);
  const wrong = (detail?: string) => ({
    problems: [`${where}: ${key} must be ${expected(spec)}, got ${describe(value)}${detail ? ` (${detail})` : ''}`],
  });
  if (value === null) return acceptsNull(spec) ? { value } : wrong();
  const resolvePath = (p: string) => {
    if (spec.path === 'path' || p.startsWith('.') || existsSync(resolve(baseDir, p))) return isAbsolute(p) ? p : resolve(baseDir, p);
    return p;
  };
  const { type } = spec;
  if (typeof type !== 'string') return typeof value === 'string' && type.includes(value) ? { value } : wrong();
  switch (type) {
    case 'string':
      if (typeof value !== 'string') return wrong();
      return { value: spec.path ? resolvePath(value) : value };
    case 'int':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value) || (type === 'int' && !Number.isInteger(value))) return wrong();
      if (spec.min !== undefined && (spec.minExclusive ? value <= spec.min : value < spec.min))
        return wrong(`must be ${spec.minExclusive ? '>' : '>='} ${spec.min}`);
      if (spec.max !== undefined && value > spec.max) return wrong(`must be <= ${spec.max}`);
      return { value };
    }
    case 'boolean':
      return typeof value === 'boolean' ? { value } : wrong();
    case 'paths': {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || list.some((p) => typeof p !== 'string' || p === '')) return wrong();
      return { value: (list as string[]).map(resolvePath) };
    }
    case 'path-or-bool':
      if (typeof value === 'boolean') return { value };
      if (typeof value !== 'string' || value === '') return wrong();
      return { value: resolvePath(value) };
    case 'model-config': {
      if (typeof value === 'string' && value !== '') {
        // A config.json file (`_` keys are comments, as in a training config): its problems are named by its path.
        const file = isAbsolute(value) ? value : resolve(baseDir, value);
        let json: Record<string, unknown>;
        try {
          json = readConfigFile(file);
        } catch (error) {
          if (error instanceof ConfigError) return { problems: error.problems.map((p) => `${where}: model_config: ${p}`) };
          throw error;
        }
        return checkValue(key, json, file, baseDir);
      }
      if (typeof value !== 'object' || Array.isArray(value)) return wrong();
      const json = value as Record<string, unknown>;
      const known: readonly string[] = [...Object.values(XLMR_CONFIG_FIELDS).map((f) => f.key), ...XLMR_CONFIG_EXTRA_KEYS];
      const unknown = Object.keys(json)
        .filter((k) => !known.includes(k))
        .map((k) => {
          const guess = didYouMean(k, known);
          return `unknown key "${k}"${guess ? ` (did you mean "${guess}"?)` : `; XLM-RoBERTa config keys: ${known.join(', ')}`}`;
        });
      // Each field's type and range, then (when those are right) what they must satisfy together.
      const fields = modelConfigFieldProblems(json);
      const problems = [...unknown, ...(fields.length > 0 ? fields : modelConfigProblems(json))];
      return problems.length > 0 ? { problems: problems.map((p) => `${where}: model_config: ${p}`) } : { value };
    }
  }
}

/** Converts a command-line string to the key's type (`--seed 7` → 7, `--shuffle false` → false). */
function parseOverrideValue(key: ConfigKey, text: string | true): unknown {
  const spec = specOf(key);
  const { type } = spec;
  if (text === true) {
    if (type === 'boolean' || type === 'path-or-bool') return true;
    throw new ConfigError(`command line: --${key} needs a value (${expected(spec)})`);
  }
  if (acceptsNull(spec) && text === 'null') return null;
  switch (type) {
    case 'int':
    case 'number': {
      const n = text.trim() === '' ? NaN : Number(text);
      return Number.isNaN(n) ? text : n;
    }
    case 'boolean':
    case 'path-or-bool':
      return text === 'true' ? true : text === 'false' ? false : text;
    case 'model-config':
    case 'paths':
      // A path: `--model_config examples/models/xlm-roberta-large.json`, `--train_data a.jsonl`.
      if (!text.trimStart().startsWith(type === 'paths' ? '[' : '{')) return text;
      try {
        return JSON.parse(text);
      } catch {
        throw new ConfigError(`command line: --${key} must be JSON (${expected(spec)}), got ${JSON.stringify(text)}`);
      }
    default:
      return text; // strings and choices
  }
}

/**
 * Splits `--key value` / `--key=value` pairs into raw override values. A boolean key may stand alone
 * (`--shuffle`); a `paths` key given twice accumulates (`--train_data a.jsonl --train_data b.jsonl`).
 */
export function parseOverrides(argv: readonly string[]): Partial<Record<ConfigKey, unknown>> {
  const out: Partial<Record<ConfigKey, unknown>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--'))
      throw new ConfigError(`command line: unexpected argument ${JSON.stringify(arg)} (overrides are --key value)`);
    const eq = arg.indexOf('=');
    const name = (eq === -1 ? arg.slice(2) : arg.slice(2, eq)).replaceAll('-', '_');
    if (!isKey(name)) throw new ConfigError(`command line: ${unknownKey(`--${name}`, name)}`);
    let text: string | true;
    if (eq !== -1) text = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) text = argv[++i];
    else text = true;
    const value = parseOverrideValue(name, text);
    out[name] =
      specOf(name).type === 'paths' && name in out ? [...([] as unknown[]).concat(out[name]), ...([] as unknown[]).concat(value)] : value;
  }
  return out;
}

export interface LoadConfigOptions {
  /** Raw `--key value` overrides (from `parseOverrides`), applied after the file; paths resolve against `cwd`. */
  overrides?: Partial<Record<ConfigKey, unknown>>;
  cwd?: string;
}

/** The config file's settings (`_` keys dropped), or a ConfigError naming the file. */
function readConfigFile(path: string): Record<string, unknown> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${path}: cannot read the config: ${fileErrorReason(error) ?? (error as Error).message}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // also drops a byte order mark
  } catch {
    throw new ConfigError(`${path}: not valid UTF-8 text`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    const { line, column, reason } = jsonSyntaxError(text, error);
    throw new ConfigError(`${path}${column === null ? '' : `:${line}:${column}`}: not valid JSON (${reason})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`${path}: expected a JSON object of settings, got ${describe(parsed)}`);
  }
  return Object.fromEntries(Object.entries(parsed).filter(([key]) => !key.startsWith('_')));
}

/**
 * Reads, checks and completes a training config. `path` may be null when everything comes from overrides.
 * Throws one `ConfigError` listing every problem found: unknown keys (with the valid ones), wrong types, a
 * missing required key, and contradictions between keys.
 */
export function loadTrainConfig(path: string | null, options: LoadConfigOptions = {}): TrainConfig {
  const cwd = options.cwd ?? process.cwd();
  const given: Partial<Record<ConfigKey, unknown>> = {};
  const problems: string[] = [];
  const invalid = new Set<ConfigKey>();
  const take = (entries: [string, unknown][], where: string, baseDir: string) => {
    for (const [key, value] of entries) {
      if (!isKey(key)) {
        problems.push(`${where}: ${unknownKey(`"${key}"`, key)}`);
        continue;
      }
      const checked = checkValue(key, value, where, baseDir);
      if ('problems' in checked) {
        problems.push(...checked.problems);
        invalid.add(key);
      } else given[key] = checked.value;
    }
  };
  if (path !== null) take(Object.entries(readConfigFile(path)), path, dirname(resolve(cwd, path)));
  const fileModel = given.model_name_or_path;
  take(Object.entries(options.overrides ?? {}), 'command line', cwd);
  // The model comes from one of two keys; the command line's replaces the file's. A fresh model in place of
  // the file's pretrained one (`--model_config its-architecture.json`) keeps that model's tokenizer by default.
  const overrides = options.overrides ?? {};
  if (overrides.model_config != null && overrides.model_name_or_path === undefined && typeof fileModel === 'string') {
    given.model_name_or_path = null;
    if (overrides.tokenizer_name_or_path === undefined) given.tokenizer_name_or_path ??= fileModel;
  }
  if (overrides.model_name_or_path != null && overrides.model_config === undefined) given.model_config = null;

  const where = path ?? 'command line';
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    if (!('default' in specOf(key)) && given[key] === undefined && !invalid.has(key)) {
      problems.push(`${where}: ${key} is required${key === 'task' ? ` (${TASKS.join(' | ')})` : ''}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const config = Object.fromEntries(
    (Object.entries(CONFIG_KEYS) as [ConfigKey, KeySpec][]).map(([key, spec]) => [
      key,
      given[key] ?? (isDerived(spec.default) ? undefined : spec.default),
    ]),
  ) as TrainConfig;
  const source = { path, cwd };
  // In the schema's order, so that a derived default may use one derived before it (output_dir from run_name).
  for (const key of Object.keys(DERIVED_DEFAULTS) as DerivedKey[]) {
    (config as Record<DerivedKey, unknown>)[key] ??= DERIVED_DEFAULTS[key](config, source);
  }
  const contradictions = contradictionsOf(config);
  if (contradictions.length > 0) throw new ConfigError(contradictions.map((c) => `${where}: ${c}`));
  return config;
}

/** Settings that are each valid but do not go together. */
function contradictionsOf(config: TrainConfig): string[] {
  const out: string[] = [];
  const taskLosses: readonly LossName[] = TASK_LOSSES[config.task];
  if (!taskLosses.includes(config.loss)) {
    const other = config.task === 'reranker' ? 'embedders' : 'rerankers';
    out.push(`loss ${config.loss} is for ${other}; a ${config.task} takes ${taskLosses.join(' | ')}`);
  }
  if (config.train_data.length === 0) out.push('train_data is required');
  if (config.model_name_or_path !== null && config.model_config !== null) out.push('give model_name_or_path or model_config, not both');
  if (config.model_name_or_path === null) {
    if (config.model_config === null)
      out.push('model_name_or_path is required (or model_config with tokenizer_name_or_path for a fresh model)');
    else if (config.tokenizer_name_or_path === null) out.push('model_config needs tokenizer_name_or_path');
  }
  if (config.loss === 'group_ce' && config.train_group_size < 2)
    out.push('group_ce needs train_group_size >= 2 (a positive and a negative)');
  if (config.scale !== null && config.temperature !== null) out.push('give scale or temperature, not both (scale = 1 / temperature)');
  if (config.scale !== null && config.loss !== 'mnrl' && config.loss !== 'mnrl_symmetric')
    out.push(`scale is for mnrl / mnrl_symmetric, not ${config.loss}`);
  if (config.temperature !== null && config.task !== 'embedder') out.push(`temperature is for the embedder losses, not ${config.loss}`);
  if (config.mini_batch_size > 0 && config.task !== 'embedder') out.push('mini_batch_size (GradCache) is for embedders');
  if (config.overwrite_output_dir && config.resume_from_checkpoint !== null && config.resume_from_checkpoint !== false) {
    out.push('give resume_from_checkpoint (--resume) or overwrite_output_dir, not both');
  }
  if (config.model_config !== null) {
    const field = <K extends 'maxPositionEmbeddings' | 'padTokenId'>(name: K) =>
      (config.model_config![XLMR_CONFIG_FIELDS[name].key] ?? XLMR_CONFIG_FIELDS[name].default) as number;
    const tooLong = inputLengthProblem(config, field('maxPositionEmbeddings') - field('padTokenId') - 1);
    if (tooLong)
      out.push(
        `model_config: max_position_embeddings ${field('maxPositionEmbeddings')} ${tooLong}; raise max_position_embeddings or lower the lengths`,
      );
  }
  if (config.knowledge_distillation && config.task === 'embedder' && config.loss !== 'infonce') {
    out.push(`knowledge_distillation for embedders goes with loss infonce (FlagEmbedding's kl_div over its scores), not ${config.loss}`);
  }
  return out;
}

/**
 * What is wrong when the model's position table holds fewer tokens than the longest training input: a reranker
 * pair holds `query_max_len + passage_max_len` tokens, an embedder text the larger of the two. `usable` is
 * `max_position_embeddings - pad_token_id - 1` (XLM-R position ids start after the padding id). The message
 * continues a sentence that names the model's `max_position_embeddings`; null when everything fits.
 * (Evaluation pairs, `max_len`, are cut to the model's length, as FlagEmbedding cuts them.)
 */
export function inputLengthProblem(config: TrainConfig, usable: number): string | null {
  const longest =
    config.task === 'reranker'
      ? {
          tokens: config.query_max_len + config.passage_max_len,
          what: `a training pair holds query_max_len ${config.query_max_len} + passage_max_len ${config.passage_max_len} = ${config.query_max_len + config.passage_max_len} tokens`,
        }
      : {
          tokens: Math.max(config.query_max_len, config.passage_max_len),
          what: `the longest text holds ${Math.max(config.query_max_len, config.passage_max_len)} tokens (query_max_len ${config.query_max_len}, passage_max_len ${config.passage_max_len})`,
        };
  if (longest.tokens <= usable) return null;
  return `leaves ${usable} positions for tokens, but ${longest.what}`;
}

/** `scale` of mnrl / mnrl_symmetric, `temperature` of infonce (docs/training.md, "Losses and their knobs"). */
export function lossKnobs(config: TrainConfig): { scale: number; temperature: number } {
  const temperature = config.temperature ?? 0.02;
  const scale = config.scale ?? (config.temperature !== null ? 1 / config.temperature : 20);
  return { scale, temperature };
}

/** HF's `logging_steps` / `save_steps` / `eval_steps`: a value below 1 is a fraction of the total steps. */
export function everySteps(value: number, totalSteps: number): number {
  return value < 1 ? Math.max(1, Math.ceil(value * totalSteps)) : Math.round(value);
}

/** The `kotune train --help` table of keys: help, then the choices and the default. */
export function configHelp(): string {
  const width = Math.max(...Object.keys(CONFIG_KEYS).map((k) => k.length));
  return Object.entries(CONFIG_KEYS)
    .map(([key, spec]: [string, KeySpec]) => {
      const choices = typeof spec.type !== 'string' ? `: ${spec.type.join(' | ')}` : '';
      const fallback = !('default' in spec)
        ? ' (required)'
        : isDerived(spec.default)
          ? ` [default: ${spec.default.derived}]`
          : spec.default === null || (Array.isArray(spec.default) && spec.default.length === 0)
            ? ''
            : ` [${JSON.stringify(spec.default)}]`;
      return `  ${key.padEnd(width)}  ${spec.help}${choices}${fallback}`;
    })
    .join('\n');
}

/** The `kotune train --help` table of `model_config` keys, from the XLM-R config's one table. */
export function modelConfigHelp(): string {
  const fields = Object.values(XLMR_CONFIG_FIELDS);
  const width = Math.max(...fields.map((f) => f.key.length));
  return fields
    .map((f) => {
      const choices = typeof f.type !== 'string' ? `: ${f.type.join(' | ')}` : '';
      return `  ${f.key.padEnd(width)}  ${f.help}${choices}${f.default === null ? '' : ` [${JSON.stringify(f.default)}]`}`;
    })
    .join('\n');
}
