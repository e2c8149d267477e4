/**
 * The sentence-transformers files of an embedder folder, in every layout the library has written:
 *
 *   v2–v5  modules.json types `sentence_transformers.models.Transformer|Pooling|Normalize`;
 *          1_Pooling/config.json `word_embedding_dimension` + one `pooling_mode_*_token(s)` flag set
 *          (+ `include_prompt` from 2.7); sentence_bert_config.json `max_seq_length`, `do_lower_case`;
 *          config_sentence_transformers.json `__version__` (+ `prompts`, `default_prompt_name` from 2.4,
 *          `similarity_fn_name` from 3.0, `model_type` from 5.0)
 *   v6     types `sentence_transformers.base.modules.transformer.Transformer`,
 *          `sentence_transformers.sentence_transformer.modules.pooling.Pooling`,
 *          `sentence_transformers.base.modules.normalize.Normalize`; Pooling `embedding_dimension`,
 *          `pooling_mode` ("cls", or a list of modes), `include_prompt`; sentence_bert_config.json
 *          `transformer_task`, `modality_config`, `module_output_name` and no max length: the length is
 *          the tokenizer's `model_max_length` (tokenizer_config.json), unless `processor_kwargs` /
 *          `processing_kwargs` set one; `prompts` named `query` / `document`.
 *
 * Modules are recognised by what they are, not by one dotted path: first by class name (the last part of the
 * path, which survived the v6 move of every module), then, for a `sentence_transformers.*` class this file does
 * not know (a future rename), by the files of its folder (a pooling config; a config.json with weights).
 * Only what this library computes is accepted: Transformer → Pooling (CLS or mean) → optional Normalize; any
 * other module, pooling mode or task is an error naming the file, the module and what is supported.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonJsonText } from './json-text.ts';
import type { PoolingMode } from './pooling.ts';

export interface SentenceTransformerSettings {
  /** Folder of the Transformer module, relative to the model folder ('' = the folder itself). */
  transformerPath: string;
  pooling: PoolingMode;
  /** `embedding_dimension` / `word_embedding_dimension` of the Pooling config, checked against the model. */
  poolingDimension: number | null;
  normalize: boolean;
  /**
   * The longest input the folder asks for, special tokens included: `processing_kwargs` max_length, else
   * `processor_kwargs` / `tokenizer_args` model_max_length, else `max_seq_length` (v2–v5); null when the folder
   * leaves it to the tokenizer's `model_max_length` (v6).
   */
  maxSeqLength: number | null;
  /** Which file and key `maxSeqLength` came from, for messages. */
  maxSeqLengthSource: string | null;
  doLowerCase: boolean;
  /** Named prompts (`{"query": "query: ", "document": "passage: "}`), from config_sentence_transformers.json. */
  prompts: Record<string, string>;
  /** The prompt `encode` applies when given none (sentence-transformers' `default_prompt_name`). */
  defaultPromptName: string | null;
  /** The parsed config_sentence_transformers.json, so that a save keeps its other keys. */
  configJson: Record<string, unknown> | null;
}

type ModuleKind = 'Transformer' | 'Pooling' | 'Normalize';

const SUPPORTED = 'supported: Transformer, then Pooling (CLS or mean), then optionally Normalize';

/** Module classes sentence-transformers has shipped (v2–v6) that kotune does not compute, and what they do. */
const UNSUPPORTED_MODULES: Record<string, string> = {
  Dense: 'a Dense layer (a linear projection of the sentence embedding)',
  LayerNorm: 'a LayerNorm of the sentence embedding',
  Dropout: 'a Dropout module',
  WeightedLayerPooling: "pooling over several layers' token embeddings",
  WordEmbeddings: 'static word embeddings',
  WordWeights: 'word weights',
  BoW: 'a bag of words',
  CNN: 'a CNN',
  LSTM: 'an LSTM',
  StaticEmbedding: 'static embeddings',
  CLIPModel: 'a CLIP model',
  Asym: 'different modules for queries and documents',
  Router: 'different modules for queries and documents',
  MLMTransformer: 'a sparse (SPLADE) encoder',
  SpladePooling: 'a sparse (SPLADE) encoder',
  SparseStaticEmbedding: 'a sparse encoder',
  SparseAutoEncoder: 'a sparse encoder',
  MultiVectorMask: 'a multi-vector (ColBERT) encoder',
  HierarchicalTokenPooling: 'a multi-vector (ColBERT) encoder',
  LambdaTokenPooling: 'a multi-vector (ColBERT) encoder',
  LogitScore: 'a cross-encoder score head',
};

/** v2–v5 flags → the mode they select (null: a mode this library does not compute). */
const POOLING_FLAGS: Record<string, PoolingMode | null> = {
  pooling_mode_cls_token: 'cls',
  pooling_mode_mean_tokens: 'mean',
  pooling_mode_max_tokens: null,
  pooling_mode_mean_sqrt_len_tokens: null,
  pooling_mode_weightedmean_tokens: null,
  pooling_mode_lasttoken: null,
};
/** v6 `pooling_mode` names (the flags' modes: cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken). */
const POOLING_NAMES: Record<string, PoolingMode | null> = {
  cls: 'cls',
  mean: 'mean',
  max: null,
  mean_sqrt_len_tokens: null,
  weightedmean: null,
  lasttoken: null,
};

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `not valid JSON (${(error as Error).message})`;
    throw new Error(`${path}: ${reason}`);
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * What a module is: its class name when it is one of the three (whatever package path holds it), else, for a
 * `sentence_transformers.*` class this file does not list, the contents of its folder; null when unknown.
 */
function moduleKind(type: string, folder: string): ModuleKind | null {
  const className = type.split('.').at(-1)!;
  if (className === 'Transformer' || className === 'Pooling' || className === 'Normalize') return className;
  if (!type.startsWith('sentence_transformers.') || className in UNSUPPORTED_MODULES || !existsSync(folder)) return null;
  const configPath = join(folder, 'config.json');
  const config = existsSync(configPath) ? readJson(configPath) : null;
  if (config && ('pooling_mode' in config || Object.keys(config).some((key) => key in POOLING_FLAGS))) return 'Pooling';
  if (config && typeof config.model_type === 'string' && readdirSync(folder).some((name) => /\.(safetensors|bin)$/.test(name)))
    return 'Transformer';
  // A Normalize has no settings, like other parameter-free modules: it is only ever known by its name.
  return null;
}

function describe(type: string): string {
  const what = UNSUPPORTED_MODULES[type.split('.').at(-1)!];
  return `${JSON.stringify(type)}${what ? ` (${what})` : ''}`;
}

/** The settings of a sentence-transformers folder, or null when `dir` has no modules.json. */
export function readSentenceTransformerFolder(dir: string): SentenceTransformerSettings | null {
  const modulesPath = join(dir, 'modules.json');
  if (!existsSync(modulesPath)) return null;
  const modules = readJson(modulesPath) as unknown;
  if (!Array.isArray(modules)) throw new Error(`${modulesPath}: expected a list of modules`);

  const configPath = join(dir, 'config_sentence_transformers.json');
  const configJson = existsSync(configPath) ? readJson(configPath) : null;
  const modelType = configJson?.model_type ?? 'SentenceTransformer';
  if (modelType !== 'SentenceTransformer') {
    const hint = modelType === 'CrossEncoder' ? '; a CrossEncoder is a reranker: load it with Reranker (kotune score)' : '';
    throw new Error(`${configPath}: "model_type" is ${JSON.stringify(modelType)}; an embedder needs a SentenceTransformer${hint}`);
  }

  const order: ModuleKind[] = ['Transformer', 'Pooling', 'Normalize'];
  let transformerPath: string | null = null;
  let pooling: { mode: PoolingMode; dimension: number | null } | null = null;
  let normalize = false;
  modules.forEach((module: unknown, index) => {
    const type = isObject(module) && typeof module.type === 'string' ? module.type : '';
    const path = isObject(module) && typeof module.path === 'string' ? module.path : '';
    if (type === '') throw new Error(`${modulesPath}: module ${index} has no "type"`);
    const kind = moduleKind(type, join(dir, path));
    if (kind === null) throw new Error(`${modulesPath}: module ${index} ${describe(type)} is not supported; ${SUPPORTED}`);
    if (order.indexOf(kind) !== index) {
      const what = kind === 'Transformer' && index > 0 ? 'a second Transformer' : `${kind} in place ${index}`;
      throw new Error(`${modulesPath}: module ${index} ${JSON.stringify(type)} is ${what}; ${SUPPORTED}`);
    }
    if (kind === 'Transformer') transformerPath = path;
    if (kind === 'Pooling') pooling = readPooling(join(dir, path, 'config.json'));
    if (kind === 'Normalize') normalize = true;
  });
  if (transformerPath === null || pooling === null)
    throw new Error(`${modulesPath}: needs a Transformer and a Pooling module; ${SUPPORTED}`);

  const transformer = readTransformerConfig(join(dir, transformerPath));
  const prompts = configJson?.prompts ?? {};
  if (!isObject(prompts) || Object.values(prompts).some((p) => typeof p !== 'string')) {
    throw new Error(`${configPath}: "prompts" must map names to strings`);
  }
  const defaultPromptName = configJson?.default_prompt_name ?? null;
  if (defaultPromptName !== null && (typeof defaultPromptName !== 'string' || !(defaultPromptName in prompts))) {
    throw new Error(
      `${configPath}: "default_prompt_name" ${JSON.stringify(defaultPromptName)} is not one of the prompts (${Object.keys(prompts).join(', ') || 'none'})`,
    );
  }
  const { mode, dimension } = pooling as { mode: PoolingMode; dimension: number | null };
  return {
    transformerPath,
    pooling: mode,
    poolingDimension: dimension,
    normalize,
    ...transformer,
    prompts: prompts as Record<string, string>,
    defaultPromptName: defaultPromptName as string | null,
    configJson,
  };
}

/**
 * The Transformer module's sentence_bert_config.json (or one of the older per-model names sentence-transformers
 * still reads): the task, the max length and lower-casing.
 */
function readTransformerConfig(folder: string): Pick<SentenceTransformerSettings, 'maxSeqLength' | 'maxSeqLengthSource' | 'doLowerCase'> {
  const names = ['sentence_bert_config.json', 'sentence_roberta_config.json', 'sentence_xlm-roberta_config.json'];
  const path = names.map((name) => join(folder, name)).find(existsSync);
  if (path === undefined) return { maxSeqLength: null, maxSeqLengthSource: null, doLowerCase: false };
  const config = readJson(path);
  const task = config.transformer_task ?? 'feature-extraction';
  if (task !== 'feature-extraction') {
    throw new Error(
      `${path}: "transformer_task" is ${JSON.stringify(task)}; an embedder's Transformer is "feature-extraction" (token embeddings)`,
    );
  }
  const output =
    isObject(config.modality_config) && isObject(config.modality_config.text) ? config.modality_config.text.method_output_name : undefined;
  if (output !== undefined && output !== 'last_hidden_state') {
    throw new Error(`${path}: the text modality outputs ${JSON.stringify(output)}; supported: "last_hidden_state"`);
  }
  for (const key of ['query_length', 'document_length', 'query_expansion']) {
    if (config[key] !== undefined && config[key] !== null)
      throw new Error(`${path}: "${key}" (a multi-vector encoder setting) is not supported`);
  }
  // sentence-transformers' precedence: per-call processing kwargs, then the tokenizer kwargs, then max_seq_length.
  const processing = isObject(config.processing_kwargs) ? config.processing_kwargs : {};
  const processor = [config.processor_kwargs, config.tokenizer_args].find(isObject) ?? {};
  const candidates: [unknown, string][] = [
    [isObject(processing.text) ? processing.text.max_length : undefined, 'processing_kwargs.text.max_length'],
    [isObject(processing.common) ? processing.common.max_length : undefined, 'processing_kwargs.common.max_length'],
    [processor.model_max_length, `${config.processor_kwargs !== undefined ? 'processor_kwargs' : 'tokenizer_args'}.model_max_length`],
    [config.max_seq_length, 'max_seq_length'],
  ];
  const [value, key] = candidates.find(([v]) => v !== undefined && v !== null) ?? [null, null];
  if (value !== null && (!Number.isInteger(value) || (value as number) < 2)) {
    throw new Error(`${path}: "${key}" must be an integer ≥ 2, got ${JSON.stringify(value)}`);
  }
  return {
    maxSeqLength: value as number | null,
    maxSeqLengthSource: key && `${path} "${key}"`,
    doLowerCase: config.do_lower_case === true,
  };
}

function readPooling(path: string): { mode: PoolingMode; dimension: number | null } {
  const config = readJson(path);
  let modes: string[];
  let computed: (PoolingMode | null)[];
  if (config.pooling_mode !== undefined) {
    const given = config.pooling_mode;
    modes = Array.isArray(given) ? given.map(String) : [String(given)];
    computed = modes.map((m) => POOLING_NAMES[m] ?? null);
  } else {
    modes = Object.keys(POOLING_FLAGS).filter((flag) => config[flag] === true);
    computed = modes.map((flag) => POOLING_FLAGS[flag]!);
  }
  if (modes.length !== 1 || computed[0] === null) {
    throw new Error(
      `${path}: pooling ${modes.join(' + ') || '(none)'} is not supported; supported: one of "cls", "mean" ` +
        '(pooling_mode, or the flags pooling_mode_cls_token / pooling_mode_mean_tokens)',
    );
  }
  const mode = computed[0]!;
  if (mode === 'mean' && config.include_prompt === false) {
    throw new Error(`${path}: "include_prompt": false (prompt tokens left out of mean pooling) is not supported`);
  }
  const dimension = config.embedding_dimension ?? config.word_embedding_dimension ?? null;
  if (dimension !== null && (!Number.isInteger(dimension) || (dimension as number) < 1)) {
    throw new Error(`${path}: the embedding dimension must be a positive integer, got ${JSON.stringify(dimension)}`);
  }
  return { mode, dimension: dimension as number | null };
}

/**
 * Writes the sentence-transformers files for a Transformer at the folder's root.
 *
 * The layout is sentence-transformers 2.0's, the oldest one every later version reads: module types
 * `sentence_transformers.models.*` (6.x maps them to its new paths), `max_seq_length` and `do_lower_case` in
 * sentence_bert_config.json (6.x passes it on as the tokenizer's `model_max_length`), and the Pooling config as
 * `word_embedding_dimension` + the four 2.0 flags (6.x converts them to `pooling_mode`; the later
 * `include_prompt` and weighted-mean / last-token flags are left at their defaults by not writing them, since
 * 2.0–2.6 reject keys they do not know). The 6.x layout would not load in 2.x–5.x at all. Prompts go in
 * config_sentence_transformers.json, which every version reads key by key (prompts count from 2.4).
 */
export function writeSentenceTransformerFiles(
  dir: string,
  settings: {
    pooling: PoolingMode;
    normalize: boolean;
    maxSeqLength: number;
    doLowerCase: boolean;
    hiddenSize: number;
    prompts: Record<string, string>;
    defaultPromptName: string | null;
    configJson: Record<string, unknown> | null;
  },
): void {
  const type = (name: ModuleKind) => `sentence_transformers.models.${name}`;
  const modules = [
    { idx: 0, name: '0', path: '', type: type('Transformer') },
    { idx: 1, name: '1', path: '1_Pooling', type: type('Pooling') },
    ...(settings.normalize ? [{ idx: 2, name: '2', path: '2_Normalize', type: type('Normalize') }] : []),
  ];
  writeFileSync(join(dir, 'modules.json'), pythonJsonText(modules));
  writeFileSync(
    join(dir, 'sentence_bert_config.json'),
    pythonJsonText({ max_seq_length: settings.maxSeqLength, do_lower_case: settings.doLowerCase }),
  );
  // Key order as sentence-transformers writes it; keys of a loaded file are kept in their place.
  const stConfig: Record<string, unknown> = {
    __version__: { sentence_transformers: '3.0.1' },
    prompts: {},
    default_prompt_name: null,
    similarity_fn_name: 'cosine',
    ...settings.configJson,
  };
  stConfig.prompts = settings.prompts;
  stConfig.default_prompt_name = settings.defaultPromptName;
  writeFileSync(join(dir, 'config_sentence_transformers.json'), pythonJsonText(stConfig));
  mkdirSync(join(dir, '1_Pooling'));
  writeFileSync(
    join(dir, '1_Pooling', 'config.json'),
    pythonJsonText({
      word_embedding_dimension: settings.hiddenSize,
      pooling_mode_cls_token: settings.pooling === 'cls',
      pooling_mode_mean_tokens: settings.pooling === 'mean',
      pooling_mode_max_tokens: false,
      pooling_mode_mean_sqrt_len_tokens: false,
    }),
  );
  if (settings.normalize) mkdirSync(join(dir, '2_Normalize'));
}
