/**
 * The model a run trains: a `Reranker` or an `Embedder` from @kotune/xlm-roberta (both `TrainableModel`s,
 * told apart by `kind`), loaded from `model_name_or_path` (a folder or a Hugging Face cache repo id), from a
 * checkpoint when resuming (so the base model's weights are never read again), or initialised afresh from
 * `model_config` + `tokenizer_name_or_path`.
 */
import { applyFormat } from '@kotune/data';
import { Embedder, Reranker, type ConfigOverrides } from '@kotune/xlm-roberta';
import type { TrainConfig } from './config.ts';

export type TrainModel = Reranker | Embedder;

export async function loadTrainModel(config: TrainConfig, checkpointDir: string | null, log: (line: string) => void): Promise<TrainModel> {
  const source = checkpointDir ?? config.model_name_or_path;
  // A checkpoint is verified as a whole before a resume (`checkpointProblems`); a model folder is verified here.
  const verify = checkpointDir === null;
  // The saved config.json of a checkpoint already holds the dropout; giving it again changes nothing.
  const dropout: ConfigOverrides =
    config.dropout === null ? {} : { hiddenDropoutProb: config.dropout, attentionProbsDropoutProb: config.dropout };
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
  const embedder =
    source !== null
      ? await Embedder.load(source, { ...settings, log, verify })
      : Embedder.random(config.model_config!, config.tokenizer_name_or_path!, config.seed, settings);
  Object.assign(embedder.prompts, instructionPrompts(config, log));
  return embedder;
}

/**
 * The retrieval instructions as sentence-transformers prompts, saved with the model so that its users embed
 * as training did: `query` and `document`, the names `encode_query` / `encode_document` look up (5.0+; older
 * versions take `prompt_name="query"`), and `kotune encode --prompt-name`. A format that puts text after the
 * input (not a prefix) cannot be a prompt and is left out with a line saying so.
 */
function instructionPrompts(config: TrainConfig, log: (line: string) => void): Record<string, string> {
  const prompts: Record<string, string> = {};
  const add = (name: string, key: string, format: string, instruction: string | null) => {
    if (instruction === null) return;
    if (format.endsWith('{}')) prompts[name] = applyFormat(format, instruction, '');
    else log(`${key} ${JSON.stringify(format)} puts text after the input: the instruction is not saved as the "${name}" prompt`);
  };
  add('query', 'query_instruction_format', config.query_instruction_format, config.query_instruction_for_retrieval);
  add('document', 'passage_instruction_format', config.passage_instruction_format, config.passage_instruction_for_retrieval);
  return prompts;
}
