export {
  configFromJson,
  configToJsonText,
  loadConfig,
  modelConfigFieldProblems,
  modelConfigProblems,
  numLabels,
  withOverrides,
  XLMR_CONFIG_EXTRA_KEYS,
  XLMR_CONFIG_FIELDS,
} from './configuration-xlm-roberta.ts';
export type { ConfigOverrides, XLMRobertaConfig, XLMRobertaConfigJson } from './configuration-xlm-roberta.ts';
export {
  ACT2FN,
  XLMRobertaModel,
  XLMRobertaForSequenceClassification,
  createPositionIdsFromInputIds,
  firstToken,
  encoderParameterSpecs,
  classifierParameterSpecs,
  initParameters,
} from './modeling-xlm-roberta.ts';
export type { ForwardOptions, ModelOutput, ParameterSpec } from './modeling-xlm-roberta.ts';
export { sequenceClassificationParameters, encoderParameters } from './checkpoint.ts';
export { pool, cosineSimilarity, POOLING_MODES } from './pooling.ts';
export type { PoolingMode } from './pooling.ts';
export { Reranker } from './reranker.ts';
export type { ScoreOptions } from './reranker.ts';
export { Embedder } from './embedder.ts';
export type { EmbedderSettings, EncodeOptions } from './embedder.ts';
export type { LoadOptions } from './pretrained.ts';
export { readSentenceTransformerFolder } from './sentence-transformers.ts';
export type { SentenceTransformerSettings } from './sentence-transformers.ts';
export type { TrainableModel } from './trainable.ts';
export { rewriteFolderFile, writeModelFolder } from './folder.ts';
export { pythonJsonText } from './json-text.ts';
