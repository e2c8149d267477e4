/**
 * `kotune export --format onnx --model DIR [--type reranker|embedder] [--external-data auto|always|never]`:
 * writes `DIR/onnx/model.onnx`, the model's ONNX graph for onnxruntime and transformers.js, beside the folder's
 * config, tokenizer and sentence-transformers files (see @kotune/onnx).
 */
import { initBackend } from '@kotune/engine';
import { exportOnnx, type XLMRobertaTask } from '@kotune/onnx';
import { parseCommandArgs, type Flags } from '../args.ts';
import { CliError } from '../errors.ts';

const SYNOPSIS = '--format onnx --model DIR [--type reranker|embedder] [--external-data auto|always|never]';
const FLAGS: Flags = {
  format: { type: 'string', required: true, help: 'onnx (the only format)' },
  model: { type: 'string', required: true, help: 'a local model folder; the export goes to DIR/onnx/' },
  type: { type: 'string', help: "reranker | embedder (default: from the folder's modules.json / config.json architectures)" },
  'external-data': { type: 'string', default: 'auto', help: 'weights in DIR/onnx/model.onnx_data: auto (past 2 GB), always, never' },
};
const EXTERNAL_DATA: Record<string, boolean | 'auto'> = { auto: 'auto', always: true, never: false };

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('export', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const v = parsed.values;
  if (v.format !== 'onnx') throw new CliError(`export: --format must be onnx, got '${String(v.format)}'`);
  const type = v.type as string | undefined;
  if (type !== undefined && type !== 'reranker' && type !== 'embedder')
    throw new CliError(`export: --type must be reranker or embedder, got '${type}'`);
  const externalData = EXTERNAL_DATA[v['external-data'] as string];
  if (externalData === undefined)
    throw new CliError(`export: --external-data must be auto, always or never, got '${String(v['external-data'])}'`);
  await initBackend({ backend: v.backend as string | undefined });
  const result = await exportOnnx(v.model as string, { task: type as XLMRobertaTask | undefined, externalData });
  const files = [result.modelPath, ...result.dataPaths].join(', ');
  console.log(`exported the ${result.task} to ${files} (${(result.bytes / 1e6).toFixed(1)} MB)`);
}
