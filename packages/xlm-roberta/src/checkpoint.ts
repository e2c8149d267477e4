/**
 * State dict ↔ variables for the two architectures, with transformers' key conventions:
 *   - `XLMRobertaForSequenceClassification`: `roberta.*` (no pooler) + `classifier.*`;
 *   - `XLMRobertaModel`: bare names, `pooler.dense.*` when the checkpoint has a pooler.
 * Either layout loads into either model (`roberta.` prefix or none). Buffers (`embeddings.position_ids`,
 * `embeddings.token_type_ids`) are ignored; heads that belong to another architecture (`lm_head.*` of a masked-LM
 * checkpoint, a pooler for a classifier, a classifier for an encoder) are dropped with a warning, as
 * transformers drops them; any other extra tensor, a missing one or a wrong shape is an error naming the key.
 * A classifier missing altogether (a base checkpoint) is initialised afresh, as transformers does.
 */
import type { tf } from '@kotune/engine';
import type { LoadedTensor, TensorToWrite } from '@kotune/weights';
import type { XLMRobertaConfig } from './configuration-xlm-roberta.ts';
import {
  classifierParameterSpecs,
  encoderParameterSpecs,
  initParameters,
  parametersFromStateDict,
  type ParameterSpec,
} from './modeling-xlm-roberta.ts';

export type Log = ((line: string) => void) | null;

const BUFFERS = new Set(['embeddings.position_ids', 'embeddings.token_type_ids']);

/** Splits the keys into encoder keys (prefix stripped) and the rest. */
function splitKeys(stateDict: Map<string, LoadedTensor>): { encoder: Map<string, string>; other: string[] } {
  const prefixed = [...stateDict.keys()].some((key) => key.startsWith('roberta.'));
  const encoder = new Map<string, string>();
  const other: string[] = [];
  for (const key of stateDict.keys()) {
    if (prefixed && key.startsWith('roberta.')) encoder.set(key.slice('roberta.'.length), key);
    else if (!prefixed && (key.startsWith('embeddings.') || key.startsWith('encoder.') || key.startsWith('pooler.'))) encoder.set(key, key);
    else other.push(key);
  }
  return { encoder, other };
}

function specNames(specs: ParameterSpec[]): Set<string> {
  return new Set(specs.map((s) => s.name));
}

/** Drops `keys` that belong to other heads (with one warning line), and fails on anything else. */
function checkLeftovers(keys: string[], droppable: (key: string) => boolean, architecture: string, source: string, log: Log): void {
  const unexpected = keys.filter((key) => !droppable(key));
  if (unexpected.length > 0) {
    const shown =
      unexpected
        .slice(0, 5)
        .map((k) => `"${k}"`)
        .join(', ') + (unexpected.length > 5 ? `, ... (${unexpected.length} in all)` : '');
    throw new Error(`${source}: unexpected tensor${unexpected.length > 1 ? 's' : ''} ${shown} for ${architecture}`);
  }
  if (keys.length > 0)
    log?.(
      `${source}: ignoring ${keys.length} tensors not used by ${architecture} (${keys.slice(0, 3).join(', ')}${keys.length > 3 ? ', ...' : ''})`,
    );
}

/** Variables of `XLMRobertaForSequenceClassification` under `roberta.*` / `classifier.*`. */
export function sequenceClassificationParameters(
  stateDict: Map<string, LoadedTensor>,
  config: XLMRobertaConfig,
  source: string,
  options: { seed: number; log: Log },
): Map<string, tf.Variable> {
  const architecture = 'XLMRobertaForSequenceClassification';
  const encoderSpecs = encoderParameterSpecs(config, { addPoolingLayer: false });
  const classifierSpecs = classifierParameterSpecs(config);
  const { encoder, other } = splitKeys(stateDict);
  const wanted = specNames(encoderSpecs);
  const params = parametersFromStateDict(encoderSpecs, stateDict, (name) => encoder.get(name) ?? `roberta.${name}`, source);

  const classifierKeys = other.filter((key) => key.startsWith('classifier.'));
  if (classifierKeys.length === 0) {
    options.log?.(
      `${source}: no classifier in the checkpoint; ${classifierSpecs.map((s) => s.name).join(', ')} are newly initialised (seed ${options.seed})`,
    );
    for (const [name, value] of initParameters(classifierSpecs, config, options.seed)) params.set(name, value);
  } else {
    try {
      for (const [name, value] of parametersFromStateDict(classifierSpecs, stateDict, (name) => name, source)) params.set(name, value);
    } catch (error) {
      for (const value of params.values()) value.dispose();
      throw error;
    }
  }
  const renamed = new Map([...params].map(([name, value]) => [specNames(classifierSpecs).has(name) ? name : `roberta.${name}`, value]));
  const leftovers = [
    ...[...encoder].filter(([name]) => !wanted.has(name) && !BUFFERS.has(name)).map(([, key]) => key),
    ...other.filter((key) => !specNames(classifierSpecs).has(key)),
  ];
  try {
    checkLeftovers(leftovers, (key) => /^(roberta\.)?pooler\./.test(key) || key.startsWith('lm_head.'), architecture, source, options.log);
  } catch (error) {
    for (const value of renamed.values()) value.dispose();
    throw error;
  }
  return renamed;
}

/** Variables of `XLMRobertaModel` under bare names, with the pooler when the checkpoint has one. */
export function encoderParameters(
  stateDict: Map<string, LoadedTensor>,
  config: XLMRobertaConfig,
  source: string,
  options: { log: Log },
): Map<string, tf.Variable> {
  const architecture = 'XLMRobertaModel';
  const { encoder, other } = splitKeys(stateDict);
  const specs = encoderParameterSpecs(config, { addPoolingLayer: encoder.has('pooler.dense.weight') || encoder.has('pooler.dense.bias') });
  const wanted = specNames(specs);
  const leftovers = [...[...encoder].filter(([name]) => !wanted.has(name) && !BUFFERS.has(name)).map(([, key]) => key), ...other];
  checkLeftovers(leftovers, (key) => key.startsWith('classifier.') || key.startsWith('lm_head.'), architecture, source, options.log);
  return parametersFromStateDict(specs, stateDict, (name) => encoder.get(name) ?? name, source);
}

/** The variables' values as safetensors input (float32, names as given). */
export function tensorsToWrite(params: Map<string, tf.Variable>): Map<string, TensorToWrite> {
  const out = new Map<string, TensorToWrite>();
  for (const [name, value] of params) out.set(name, { dtype: 'F32', shape: value.shape, data: value.dataSync() as Float32Array });
  return out;
}
