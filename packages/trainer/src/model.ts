/**
 * The model a run trains: a `Reranker` or an `Embedder` from @kotune/xlm-roberta (both `TrainableModel`s,
 * told apart by `kind`), loaded from `model_name_or_path` (a folder or a Hugging Face cache repo id), from a
 * checkpoint when resuming (so the base model's weights are never read again), or initialised afresh from
 * `model_config` + `tokenizer_name_or_path`.
 */
import { Embedder, Reranker, type ConfigOverrides } from '@kotune/xlm-roberta';
import type { TrainConfig } from './config.ts';

export type TrainModel = Reranker | Embedder;

export async function loadTrainModel(config: TrainConfig, checkpointDir: string | null, log: (line: string) => void): Promise<TrainModel> {
  const source = checkpointDir ?? config.model_name_or_path;
  // A checkpoint is verified as a whole before a resume (`checkpointProblems`); a model folder is verified here.
  const verify = checkpointDir === null;
  // The saved config.json of a checkpoint already holds the dropout; giving it again changes nothing.
  const dropout: ConfigOverrides = config.dropout === null ? {} : { hiddenDropoutProb: config.dropout, attentionProbsDropoutProb: config.dropout };
  if (config.task === 'reranker') {
    return source !== null
      ? Reranker.load(source, { ...dropout, seed: config.seed, log, verify })
      : Reranker.random(config.model_config!, config.tokenizer_name_or_path!, config.seed, dropout);
  }
  const settings = {
    ...dropout,
    ...(config.sentence_pooling_method !== null ? { pooling: config.sentence_pooling_method } : {}),
    normalize: config.normalize_embeddings,
  };
  return source !== null
    ? Embedder.load(source, { ...settings, log, verify })
    : Embedder.random(config.model_config!, config.tokenizer_name_or_path!, config.seed, settings);
}
