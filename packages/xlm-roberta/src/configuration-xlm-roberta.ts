/**
 * `XLMRobertaConfig`: the fields of a Hugging Face `config.json` the model reads, in camelCase, with the
 * defaults of transformers' `XLMRobertaConfig` class. The parsed JSON is kept whole (`json`) so that keys this
 * library does not use (`torch_dtype`, `use_cache`, `transformers_version`...) survive a load → save.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonJsonText } from './json-text.ts';

export interface XLMRobertaConfig {
  vocabSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  intermediateSize: number;
  hiddenAct: string;
  hiddenDropoutProb: number;
  attentionProbsDropoutProb: number;
  /** Dropout before and inside the classification head; null means `hiddenDropoutProb`. */
  classifierDropout: number | null;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  initializerRange: number;
  layerNormEps: number;
  padTokenId: number;
  bosTokenId: number;
  eosTokenId: number;
  positionEmbeddingType: string;
  /** `id2label` keyed by label index; its size is `num_labels`. */
  id2label: Record<string, string>;
  /** The parsed `config.json` (or the dict the config was built from), written back on save. */
  json: Record<string, unknown>;
}

/** What a caller may change when loading or creating a model (the trainer's `dropout`, for one). */
export type ConfigOverrides = Partial<Pick<XLMRobertaConfig, 'hiddenDropoutProb' | 'attentionProbsDropoutProb' | 'classifierDropout'>>;

/** transformers' `XLMRobertaConfig.__init__` defaults (snake_case key, default value). */
const FIELDS: { [K in Exclude<keyof XLMRobertaConfig, 'json' | 'id2label'>]: [string, XLMRobertaConfig[K]] } = {
  vocabSize: ['vocab_size', 30522],
  hiddenSize: ['hidden_size', 768],
  numHiddenLayers: ['num_hidden_layers', 12],
  numAttentionHeads: ['num_attention_heads', 12],
  intermediateSize: ['intermediate_size', 3072],
  hiddenAct: ['hidden_act', 'gelu'],
  hiddenDropoutProb: ['hidden_dropout_prob', 0.1],
  attentionProbsDropoutProb: ['attention_probs_dropout_prob', 0.1],
  classifierDropout: ['classifier_dropout', null],
  maxPositionEmbeddings: ['max_position_embeddings', 512],
  typeVocabSize: ['type_vocab_size', 2],
  initializerRange: ['initializer_range', 0.02],
  layerNormEps: ['layer_norm_eps', 1e-12],
  padTokenId: ['pad_token_id', 1],
  bosTokenId: ['bos_token_id', 0],
  eosTokenId: ['eos_token_id', 2],
  positionEmbeddingType: ['position_embedding_type', 'absolute'],
};

const POSITIVE_INTEGERS = ['vocabSize', 'hiddenSize', 'numHiddenLayers', 'numAttentionHeads', 'intermediateSize', 'maxPositionEmbeddings', 'typeVocabSize'] as const;
const PROBABILITIES = ['hiddenDropoutProb', 'attentionProbsDropoutProb'] as const;

/**
 * Builds the config from a `config.json` object; `source` names the file in error messages. `num_labels`
 * (without `id2label`) gives labels `LABEL_i`, as transformers does; the default is one label (a reranker).
 */
export function configFromJson(json: Record<string, unknown>, source = 'config'): XLMRobertaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  const config = { json: { ...json } } as XLMRobertaConfig;
  const fields = config as unknown as Record<string, unknown>;
  for (const [field, [key, fallback]] of Object.entries(FIELDS)) {
    const value = json[key] ?? fallback;
    if (typeof value !== typeof fallback && !(field === 'classifierDropout' && (value === null || typeof value === 'number'))) {
      throw new Error(`${source}: "${key}" must be a ${typeof fallback}, got ${JSON.stringify(json[key])}`);
    }
    fields[field] = value;
  }
  for (const field of POSITIVE_INTEGERS) {
    const value = config[field];
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${source}: "${FIELDS[field][0]}" must be a positive integer, got ${value}`);
  }
  for (const field of [...PROBABILITIES, 'classifierDropout'] as const) {
    const value = config[field];
    if (value !== null && !(value >= 0 && value < 1)) throw new Error(`${source}: "${FIELDS[field][0]}" must be in [0, 1), got ${value}`);
  }
  if (config.hiddenSize % config.numAttentionHeads !== 0) {
    throw new Error(`${source}: hidden_size ${config.hiddenSize} is not a multiple of num_attention_heads ${config.numAttentionHeads}`);
  }
  if (config.positionEmbeddingType !== 'absolute') {
    throw new Error(`${source}: position_embedding_type "${config.positionEmbeddingType}" is not supported (only "absolute")`);
  }
  if (!(config.layerNormEps > 0)) throw new Error(`${source}: "layer_norm_eps" must be > 0, got ${config.layerNormEps}`);
  if (!Number.isInteger(config.padTokenId) || config.padTokenId < 0 || config.padTokenId >= config.maxPositionEmbeddings - 1) {
    throw new Error(`${source}: pad_token_id ${config.padTokenId} leaves no positions in max_position_embeddings ${config.maxPositionEmbeddings}`);
  }
  config.id2label = parseLabels(json, source);
  return config;
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
  if (!Number.isInteger(count) || (count as number) < 1) throw new Error(`${source}: "num_labels" must be a positive integer, got ${JSON.stringify(count)}`);
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
    json[FIELDS[field as keyof ConfigOverrides][0]] = value;
  }
  return configFromJson(json, 'config with overrides');
}

/**
 * The `config.json` text transformers' `save_pretrained` writes: keys sorted, two-space indent, a final
 * newline. Rerankers get `architectures` XLMRobertaForSequenceClassification and their labels; bare encoders
 * (embedders) get XLMRobertaModel and no labels.
 */
export function configToJsonText(config: XLMRobertaConfig, architecture: 'XLMRobertaForSequenceClassification' | 'XLMRobertaModel'): string {
  const json: Record<string, unknown> = { ...config.json, architectures: [architecture], model_type: 'xlm-roberta' };
  for (const [field, [key]] of Object.entries(FIELDS)) json[key] = (config as unknown as Record<string, unknown>)[field];
  delete json.num_labels;
  delete json.id2label;
  delete json.label2id;
  if (architecture === 'XLMRobertaForSequenceClassification') {
    json.id2label = config.id2label;
    json.label2id = Object.fromEntries(Object.entries(config.id2label).map(([id, label]) => [label, Number(id)]));
  }
  return pythonJsonText(json, { sortKeys: true });
}
