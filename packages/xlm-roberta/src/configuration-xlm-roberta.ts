/**
 * `XLMRobertaConfig`: the fields of a Hugging Face `config.json` the model reads, in camelCase, with the
 * defaults of transformers' `XLMRobertaConfig` class, all from one table (`XLMR_CONFIG_FIELDS`). The parsed
 * JSON is kept whole (`json`) so that keys this library does not use survive a load → save.
 *
 * This file imports no TensorFlow.js: the trainer checks a config's `model_config` with it
 * (`@kotune/xlm-roberta/config`) without loading a model.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonJsonText } from './json-text.ts';

/** How a field is written in config.json. */
interface FieldTypes {
  int: number;
  number: number;
  string: string;
  /** A number in [0, 1). */
  probability: number;
}

interface FieldSpec {
  /** Its config.json key. */
  key: string;
  type: keyof FieldTypes | readonly string[];
  /** transformers' `XLMRobertaConfig.__init__` default. */
  default: unknown;
  /** `null` is a value of its own (said in `help`). */
  nullable?: true;
  /** Lowest value; `minExclusive` leaves the bound out. */
  min?: number;
  minExclusive?: true;
  help: string;
}

/**
 * The config.json fields the model reads, each defined once: key, type, transformers' default and what it
 * does. `XLMRobertaConfig`, `configFromJson`'s checks and the trainer's `model_config` checks come from it.
 */
export const XLMR_CONFIG_FIELDS = {
  vocabSize: {
    key: 'vocab_size',
    type: 'int',
    min: 1,
    default: 30522,
    help: "token ids the embedding holds (a fresh model: the tokenizer's)",
  },
  hiddenSize: { key: 'hidden_size', type: 'int', min: 1, default: 768, help: 'width of every layer, a multiple of num_attention_heads' },
  numHiddenLayers: { key: 'num_hidden_layers', type: 'int', min: 1, default: 12, help: 'encoder layers' },
  numAttentionHeads: { key: 'num_attention_heads', type: 'int', min: 1, default: 12, help: 'attention heads per layer' },
  intermediateSize: { key: 'intermediate_size', type: 'int', min: 1, default: 3072, help: 'feed-forward width' },
  hiddenAct: { key: 'hidden_act', type: 'string', default: 'gelu', help: "feed-forward activation (transformers' ACT2FN name)" },
  hiddenDropoutProb: { key: 'hidden_dropout_prob', type: 'probability', default: 0.1, help: 'dropout after embeddings and sublayers' },
  attentionProbsDropoutProb: {
    key: 'attention_probs_dropout_prob',
    type: 'probability',
    default: 0.1,
    help: 'dropout on attention weights',
  },
  classifierDropout: {
    key: 'classifier_dropout',
    type: 'probability',
    nullable: true,
    default: null,
    help: 'dropout in the classification head (null = hidden_dropout_prob)',
  },
  maxPositionEmbeddings: {
    key: 'max_position_embeddings',
    type: 'int',
    min: 1,
    default: 512,
    help: 'rows of the position table; inputs hold up to this - pad_token_id - 1 tokens',
  },
  typeVocabSize: { key: 'type_vocab_size', type: 'int', min: 1, default: 2, help: 'token type rows (XLM-R uses row 0)' },
  initializerRange: { key: 'initializer_range', type: 'number', min: 0, default: 0.02, help: 'standard deviation of a fresh init' },
  layerNormEps: { key: 'layer_norm_eps', type: 'number', min: 0, minExclusive: true, default: 1e-12, help: 'LayerNorm epsilon' },
  padTokenId: { key: 'pad_token_id', type: 'int', min: 0, default: 1, help: 'padding id, also where position ids start' },
  bosTokenId: { key: 'bos_token_id', type: 'int', min: 0, default: 0, help: 'id of <s>' },
  eosTokenId: { key: 'eos_token_id', type: 'int', min: 0, default: 2, help: 'id of </s>' },
  positionEmbeddingType: {
    key: 'position_embedding_type',
    type: ['absolute'],
    default: 'absolute',
    help: 'position embeddings (only absolute is supported)',
  },
} as const satisfies Record<string, FieldSpec>;

/**
 * config.json keys a fresh model's config may hold besides `XLMR_CONFIG_FIELDS`: the labels (read by
 * `configFromJson`) and transformers' bookkeeping, kept as given. Any other key of a `model_config` is a mistake.
 */
export const XLMR_CONFIG_EXTRA_KEYS = [
  'num_labels',
  'id2label',
  'label2id',
  'architectures',
  'model_type',
  'torch_dtype',
  'transformers_version',
  'use_cache',
] as const;

type Fields = typeof XLMR_CONFIG_FIELDS;
type FieldValue<S extends FieldSpec> =
  | (S['type'] extends readonly (infer Choice)[] ? Choice : S['type'] extends keyof FieldTypes ? FieldTypes[S['type']] : never)
  | (S extends { nullable: true } ? null : never);

/** The config.json fields the model reads, in camelCase, with the parsed JSON kept whole. */
export type XLMRobertaConfig = { -readonly [F in keyof Fields]: FieldValue<Fields[F]> } & {
  /** `id2label` keyed by label index; its size is `num_labels`. */
  id2label: Record<string, string>;
  /**
   * The parsed `config.json` (or the dict the config was built from), written back on save, so that keys this
   * library does not use (`torch_dtype`, `use_cache`, `transformers_version`...) survive a load → save.
   */
  json: Record<string, unknown>;
};

/** config.json keys as a fresh model's `model_config` gives them (any subset; others are kept as they are). */
export type XLMRobertaConfigJson = { [F in keyof Fields as Fields[F]['key']]?: FieldValue<Fields[F]> } & Record<string, unknown>;

/** What a caller may change when loading or creating a model (the trainer's `dropout`, for one). */
export type ConfigOverrides = Partial<Pick<XLMRobertaConfig, 'hiddenDropoutProb' | 'attentionProbsDropoutProb' | 'classifierDropout'>>;

function describeValue(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** What is wrong with one field's value (null when nothing). */
function fieldProblem(spec: FieldSpec, value: unknown): string | null {
  const { key, type } = spec;
  if (value === null) return null; // only a nullable field's default is null
  if (typeof type !== 'string') {
    return type.includes(value as string)
      ? null
      : `${key} ${describeValue(value)} is not supported (only ${type.map((t) => `"${t}"`).join(', ')})`;
  }
  if (type === 'string') return typeof value === 'string' ? null : `"${key}" must be a string, got ${describeValue(value)}`;
  if (typeof value !== 'number' || !Number.isFinite(value)) return `"${key}" must be a number, got ${describeValue(value)}`;
  if (type === 'int' && !Number.isInteger(value)) return `"${key}" must be an integer, got ${value}`;
  if (type === 'probability' && !(value >= 0 && value < 1)) return `"${key}" must be in [0, 1), got ${value}`;
  if (spec.min !== undefined && (spec.minExclusive ? value <= spec.min : value < spec.min)) {
    return `"${key}" must be ${spec.minExclusive ? '>' : '>='} ${spec.min}, got ${value}`;
  }
  return null;
}

/**
 * The problems of each field of a config.json object on its own, one sentence each: wrong types and ranges of
 * the fields above (a missing key takes its default). Keys not in `XLMR_CONFIG_FIELDS` are not looked at (a
 * downloaded config.json holds many).
 */
export function modelConfigFieldProblems(json: Record<string, unknown>): string[] {
  // A missing key, or null where null means nothing, takes the default (as transformers' keyword arguments do).
  return (Object.values(XLMR_CONFIG_FIELDS) as FieldSpec[]).flatMap((spec) => fieldProblem(spec, json[spec.key] ?? spec.default) ?? []);
}

/** Every problem of a config.json object: its fields' (`modelConfigFieldProblems`), then what they must satisfy together. */
export function modelConfigProblems(json: Record<string, unknown>): string[] {
  const problems = modelConfigFieldProblems(json);
  if (problems.length > 0) return problems;
  const field = <F extends keyof Fields>(name: F) =>
    (json[XLMR_CONFIG_FIELDS[name].key] ?? XLMR_CONFIG_FIELDS[name].default) as XLMRobertaConfig[F];
  if (field('hiddenSize') % field('numAttentionHeads') !== 0) {
    problems.push(`hidden_size ${field('hiddenSize')} is not a multiple of num_attention_heads ${field('numAttentionHeads')}`);
  }
  if (field('padTokenId') >= field('maxPositionEmbeddings') - 1) {
    problems.push(`pad_token_id ${field('padTokenId')} leaves no positions in max_position_embeddings ${field('maxPositionEmbeddings')}`);
  }
  return problems;
}

/**
 * Builds the config from a `config.json` object; `source` names the file in error messages, which list every
 * problem found. `num_labels` (without `id2label`) gives labels `LABEL_i`, as transformers does; the default is
 * one label (a reranker).
 */
export function configFromJson(json: Record<string, unknown>, source = 'config'): XLMRobertaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  const problems = modelConfigProblems(json);
  if (problems.length > 0) throw new Error(`${source}: ${problems.join('; ')}`);
  const fields = Object.fromEntries(
    Object.entries(XLMR_CONFIG_FIELDS).map(([field, spec]: [string, FieldSpec]) => [field, json[spec.key] ?? spec.default]),
  );
  return { ...fields, id2label: parseLabels(json, source), json: { ...json } } as XLMRobertaConfig;
}

function parseLabels(json: Record<string, unknown>, source: string): Record<string, string> {
  if (json.id2label !== undefined) {
    const labels = json.id2label as Record<string, unknown>;
    if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) throw new Error(`${source}: "id2label" must be an object`);
    const keys = Object.keys(labels);
    const expected = keys.map((_, i) => String(i));
    if (keys.length === 0 || [...keys].sort((a, b) => Number(a) - Number(b)).some((k, i) => k !== expected[i])) {
      throw new Error(`${source}: "id2label" keys must be "0".."n-1", got ${JSON.stringify(keys)}`);
    }
    if (typeof json.num_labels === 'number' && json.num_labels !== keys.length) {
      throw new Error(`${source}: "num_labels" ${json.num_labels} disagrees with the ${keys.length} entries of "id2label"`);
    }
    return Object.fromEntries(expected.map((k) => [k, String(labels[k])]));
  }
  const count = json.num_labels ?? 1;
  if (!Number.isInteger(count) || (count as number) < 1)
    throw new Error(`${source}: "num_labels" must be a positive integer, got ${JSON.stringify(count)}`);
  return Object.fromEntries(Array.from({ length: count as number }, (_, i) => [String(i), `LABEL_${i}`]));
}

export function numLabels(config: XLMRobertaConfig): number {
  return Object.keys(config.id2label).length;
}

/** Reads `folder/config.json`. */
export function loadConfig(folder: string): XLMRobertaConfig {
  const path = join(folder, 'config.json');
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `not valid JSON (${(error as Error).message})`;
    throw new Error(`${path}: ${reason}`);
  }
  const modelType = json?.model_type;
  if (modelType !== undefined && modelType !== 'xlm-roberta' && modelType !== 'roberta') {
    throw new Error(`${path}: model_type "${String(modelType)}" is not an XLM-RoBERTa model`);
  }
  return configFromJson(json, path);
}

/** A copy of `config` with the overrides applied (to the JSON as well, so that a save records them). */
export function withOverrides(config: XLMRobertaConfig, overrides: ConfigOverrides = {}): XLMRobertaConfig {
  const json: Record<string, unknown> = { ...config.json };
  for (const [field, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    json[XLMR_CONFIG_FIELDS[field as keyof ConfigOverrides].key] = value;
  }
  return configFromJson(json, 'config with overrides');
}

/**
 * The `config.json` text transformers' `save_pretrained` writes: keys sorted, two-space indent, a final
 * newline. Rerankers get `architectures` XLMRobertaForSequenceClassification and their labels; bare encoders
 * (embedders) get XLMRobertaModel and no labels.
 */
export function configToJsonText(
  config: XLMRobertaConfig,
  architecture: 'XLMRobertaForSequenceClassification' | 'XLMRobertaModel',
): string {
  const json: Record<string, unknown> = { ...config.json, architectures: [architecture], model_type: 'xlm-roberta' };
  for (const [field, { key }] of Object.entries(XLMR_CONFIG_FIELDS)) json[key] = config[field as keyof Fields];
  delete json.num_labels;
  delete json.id2label;
  delete json.label2id;
  if (architecture === 'XLMRobertaForSequenceClassification') {
    json.id2label = config.id2label;
    json.label2id = Object.fromEntries(Object.entries(config.id2label).map(([id, label]) => [label, Number(id)]));
  }
  return pythonJsonText(json, { sortKeys: true });
}
