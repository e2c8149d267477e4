/**
 * The memory a training run will need (@kotune/engine's `trainingMemory`), from the config before anything is
 * loaded, so that `train` starts on a backend that can hold it: the model's sizes from `model_config` (a fresh
 * model) or the config.json of `model_name_or_path` (a folder, or a repo complete in the Hugging Face cache),
 * and the largest forward of a micro-batch:
 *   reranker: per_device_train_batch_size × train_group_size pairs of query_max_len + passage_max_len tokens;
 *   embedder: the batch's queries and passages (B × (1 + G) texts, kept together for the loss) of up to the longer
 *             of query_max_len / passage_max_len, or one GradCache mini-batch (`mini_batch_size` texts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { trainingMemory, type ForwardShape, type MemoryEstimate } from '@kotune/engine';
import { isRepoId, resolveModelPath } from '@kotune/hub';
import { XLMRTokenizer } from '@kotune/tokenizer';
import { configFromJson, loadConfig, type XLMRobertaConfig } from '@kotune/xlm-roberta/config';
import type { TrainConfig } from './config.ts';

/** The largest forward of one micro-batch (see the file's comment). */
export function largestForward(config: TrainConfig): ForwardShape {
  if (config.task === 'reranker') {
    return {
      sequences: config.per_device_train_batch_size * config.train_group_size,
      length: config.query_max_len + config.passage_max_len,
    };
  }
  const length = Math.max(config.query_max_len, config.passage_max_len);
  if (config.mini_batch_size > 0) return { sequences: config.mini_batch_size, length };
  return { sequences: config.per_device_train_batch_size * (1 + config.train_group_size), length };
}

/** The model's config.json as far as it can be read here without a download; undefined otherwise. */
async function modelShape(config: TrainConfig): Promise<XLMRobertaConfig | undefined> {
  if (config.model_config !== null) {
    const vocab = config.model_config.vocab_size ?? tokenizerVocabSize(config.tokenizer_name_or_path!);
    return vocab === undefined ? undefined : configFromJson({ ...config.model_config, vocab_size: vocab }, 'model_config');
  }
  const name = config.model_name_or_path!;
  let folder = name;
  if (!existsSync(name)) {
    if (!isRepoId(name)) return undefined;
    folder = await resolveModelPath(name, { offline: true, log: null }).catch(() => '');
  }
  // A sentence-transformers folder may keep its transformer in a subfolder; the estimate is then left out.
  if (!folder || !existsSync(join(folder, 'config.json'))) return undefined;
  try {
    return loadConfig(folder);
  } catch {
    return undefined; // preflight reports an unreadable config.json
  }
}

function tokenizerVocabSize(folder: string): number | undefined {
  try {
    return XLMRTokenizer.fromFolder(folder).vocabSize;
  } catch {
    return undefined; // preflight reports a missing tokenizer
  }
}

/** The run's memory estimate, or undefined when the model's sizes cannot be known before it is loaded. */
export async function trainingMemoryOf(config: TrainConfig): Promise<MemoryEstimate | undefined> {
  const shape = await modelShape(config);
  return shape && trainingMemory(shape, { forward: largestForward(config), gradientCheckpointing: config.gradient_checkpointing });
}
