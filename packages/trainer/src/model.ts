/**
 * The model a run trains: a `Reranker` or an `Embedder` from @kotune/xlm-roberta, loaded from
 * `model_name_or_path` (a folder or a Hugging Face cache repo id), from a checkpoint when resuming (so the
 * base model's weights are never read again), or initialised afresh from `model_config` +
 * `tokenizer_name_or_path`.
 */
import { applyFormat } from '@kotune/data';
import type { tf } from '@kotune/engine';
import type { XLMRTokenizer } from '@kotune/tokenizer';
import { Embedder, Reranker, type ConfigOverrides } from '@kotune/xlm-roberta';
import type { TrainConfig } from './config.ts';

interface Common {
  tokenizer: XLMRTokenizer;
  /** Longest input the position table allows, special tokens included. */
  maxSequenceLength: number;
  /** Trainable variables under their checkpoint names. */
  variables(): Map<string, tf.Variable>;
  /** Writes the Hugging Face / sentence-transformers folder. */
  save(dir: string): Promise<void>;
  dispose(): void;
}

export type TrainModel = (Common & { kind: 'reranker'; reranker: Reranker }) | (Common & { kind: 'embedder'; embedder: Embedder });

export async function loadTrainModel(config: TrainConfig, checkpointDir: string | null, log: (line: string) => void): Promise<TrainModel> {
  const source = checkpointDir ?? config.model_name_or_path;
  // The saved config.json of a checkpoint already holds the dropout; giving it again changes nothing.
  const dropout: ConfigOverrides = config.dropout === null ? {} : { hiddenDropoutProb: config.dropout, attentionProbsDropoutProb: config.dropout };
  if (config.task === 'reranker') {
    const reranker = source !== null
      ? await Reranker.load(source, { ...dropout, seed: config.seed, log })
      : Reranker.random(config.model_config!, config.tokenizer_name_or_path!, config.seed, dropout);
    return {
      kind: 'reranker', reranker, tokenizer: reranker.tokenizer, maxSequenceLength: reranker.model.roberta.maxSequenceLength,
      variables: () => reranker.variables(), save: (dir) => reranker.save(dir), dispose: () => reranker.dispose(),
    };
  }
  const settings = {
    ...dropout,
    ...(config.sentence_pooling_method !== null ? { pooling: config.sentence_pooling_method } : {}),
    normalize: config.normalize_embeddings,
  };
  const embedder = source !== null
    ? await Embedder.load(source, { ...settings, log })
    : Embedder.random(config.model_config!, config.tokenizer_name_or_path!, config.seed, settings);
  Object.assign(embedder.prompts, instructionPrompts(config, log));
  return {
    kind: 'embedder', embedder, tokenizer: embedder.tokenizer, maxSequenceLength: embedder.model.maxSequenceLength,
    variables: () => embedder.variables(), save: (dir) => embedder.save(dir), dispose: () => embedder.dispose(),
  };
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
