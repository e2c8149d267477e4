/**
 * Writes a model folder's ONNX export, `DIR/onnx/model.onnx`, where transformers.js (`from_pretrained(DIR)`)
 * and optimum look for it. The folder's other
 * files (config, tokenizer, sentence-transformers pooling) stay as they are: they are what a client needs
 * around the graph.
 *
 * Weights are the graph's initializers. A protobuf message cannot pass 2 GB, so larger models (XLM-R large:
 * 2.2 GB) keep their tensors in external data files beside the graph (`model.onnx_data`, then
 * `model.onnx_data_1`, ... of at most `MAX_DATA_FILE_BYTES` each, tensors aligned to 4 KiB): onnxruntime reads
 * them through each tensor's `location`, and transformers.js fetches them when `config.json` says how many
 * there are (`"transformers.js_config": {"use_external_data_format": N}`, which the export writes).
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Embedder, pythonJsonText, Reranker, rewriteFolderFile, writeModelFolder, type LoadOptions } from '@kotune/xlm-roberta';
import {
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
  type TensorProto,
} from './gen/onnx_pb.ts';
import { dataTypeOf, inlineTensor, rawBytes, type Initializer } from './graph-builder.ts';
import { buildXLMRobertaGraph, type Weight, type XLMRobertaTask } from './xlm-roberta-graph.ts';

/**
 * Opset 12, IR version 7 (ONNX 1.7). Not 17 with its LayerNormalization op: onnxruntime's Attention fusion
 * matches the mask's Unsqueeze only in its opset-11 form (axes as an attribute), and a LayerNorm written out
 * op by op is fused back into onnxruntime's own kernel all the same (see the package README).
 */
export const OPSET = 12;
export const IR_VERSION = 7;

/** The largest protobuf message is 2 GiB; weights above this (leaving room for the graph) go to external data. */
const INLINE_LIMIT_BYTES = 2 ** 31 - 2 ** 26;
/** Each external data file stays under 2 GiB, what a browser can fetch into one ArrayBuffer. */
export const MAX_DATA_FILE_BYTES = 2 ** 31 - 2 ** 20;
/** Tensors smaller than this stay inside the graph even with external data (ONNX's own default threshold). */
const EXTERNAL_MIN_BYTES = 1024;
const ALIGNMENT = 4096;

export interface OnnxExportOptions {
  /** External data files: `'auto'` (default) when the weights pass 2 GB, or always / never. */
  externalData?: boolean | 'auto';
  /** Largest external data file (default `MAX_DATA_FILE_BYTES`); smaller files suit a browser's cache. */
  dataFileBytes?: number;
}

export interface OnnxExportResult {
  task: XLMRobertaTask;
  /** `DIR/onnx/model.onnx`. */
  modelPath: string;
  /** External data files, in order (empty when the weights are inside model.onnx). */
  dataPaths: string[];
  /** Bytes written, graph and data files together. */
  bytes: number;
}

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * Which graph a folder holds: a sentence-transformers folder (`modules.json`) or an `XLMRobertaModel` config is
 * an embedder, `XLMRobertaForSequenceClassification` a reranker.
 */
export function modelTask(dir: string): XLMRobertaTask {
  if (existsSync(join(dir, 'modules.json'))) return 'embedder';
  const configPath = join(dir, 'config.json');
  let architectures: unknown;
  try {
    architectures = JSON.parse(readFileSync(configPath, 'utf8')).architectures;
  } catch (error) {
    throw new Error(
      `${configPath}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `not valid JSON (${(error as Error).message})`}`,
    );
  }
  const names = Array.isArray(architectures) ? architectures : [];
  if (names.includes('XLMRobertaForSequenceClassification')) return 'reranker';
  if (names.includes('XLMRobertaModel')) return 'embedder';
  throw new Error(
    `${configPath}: "architectures" ${JSON.stringify(architectures ?? null)} names neither XLMRobertaForSequenceClassification (a reranker) nor XLMRobertaModel (an embedder); say which with the task option (--type)`,
  );
}

/** The graph of a loaded reranker or embedder, with its weights read from the model's variables. */
export function modelGraph(model: Reranker | Embedder) {
  const task: XLMRobertaTask = model instanceof Reranker ? 'reranker' : 'embedder';
  const variables = model.variables();
  const weight = (name: string): Weight => {
    const value = variables.get(name);
    if (!value) throw new Error(`ONNX export: the model has no parameter "${name}"`);
    return { data: value.dataSync() as Float32Array, shape: value.shape };
  };
  return { task, graph: buildXLMRobertaGraph(model.config, task, weight) };
}

/**
 * Writes `dir/onnx/model.onnx` (and its data files) for a loaded model. Files are written under temporary
 * names and renamed into place, so no reader sees half an export. Only `dir/onnx/` is written (and the
 * external-data setting of `dir/config.json`, when there is one): `model.save(dir)` writes the rest of a folder
 * transformers.js can load.
 */
export async function writeOnnx(model: Reranker | Embedder, dir: string, options: OnnxExportOptions = {}): Promise<OnnxExportResult> {
  const { task, graph } = modelGraph(model);
  const fileBytes = options.dataFileBytes ?? MAX_DATA_FILE_BYTES;
  if (!Number.isInteger(fileBytes) || fileBytes < ALIGNMENT || fileBytes > MAX_DATA_FILE_BYTES) {
    throw new Error(`ONNX export: dataFileBytes must be an integer from ${ALIGNMENT} to ${MAX_DATA_FILE_BYTES}, got ${fileBytes}`);
  }
  const architecture = task === 'reranker' ? 'XLMRobertaForSequenceClassification' : 'XLMRobertaModel';
  const weightBytes = graph.initializers.reduce((sum, t) => sum + t.data.byteLength, 0);
  const external =
    options.externalData === undefined || options.externalData === 'auto' ? weightBytes > INLINE_LIMIT_BYTES : options.externalData;
  const onnxDir = join(dir, 'onnx');
  let dataFiles: string[] = [];
  let bytes = 0;
  await writeModelFolder(
    onnxDir,
    (staging) => {
      let tensor = inlineTensor;
      if (external) {
        const data = writeExternalData(graph.initializers, staging, 'model.onnx', fileBytes);
        dataFiles = data.files;
        bytes += data.bytes;
        tensor = (initializer) => data.tensors.get(initializer.name) ?? inlineTensor(initializer);
      }
      const proto = graph.model({
        graphName: architecture,
        opset: OPSET,
        irVersion: IR_VERSION,
        producerVersion: version,
        docString: `${architecture} (eval mode), exported by kotune`,
        tensor,
      });
      const encoded = toBinary(ModelProtoSchema, proto);
      writeFileSync(join(staging, 'model.onnx'), encoded);
      bytes += encoded.byteLength;
    },
    { checksums: false },
  ); // onnx/ is for onnxruntime and transformers.js, which read no checksums.json
  removeStaleDataFiles(onnxDir, dataFiles);
  updateTransformersJsConfig(dir, dataFiles.length);
  return { task, modelPath: join(onnxDir, 'model.onnx'), dataPaths: dataFiles.map((f) => join(onnxDir, f)), bytes };
}

/**
 * Writes the initializers of at least `EXTERNAL_MIN_BYTES` into `<model>_data`, `<model>_data_1`, ... and
 * returns the TensorProtos that point at them.
 */
function writeExternalData(
  initializers: Initializer[],
  dir: string,
  modelFile: string,
  fileBytes: number,
): { files: string[]; bytes: number; tensors: Map<string, TensorProto> } {
  const files: string[] = [];
  const tensors = new Map<string, TensorProto>();
  let fd = -1;
  let end = 0;
  let bytes = 0;
  try {
    for (const initializer of initializers) {
      const raw = rawBytes(initializer.data);
      if (raw.byteLength < EXTERNAL_MIN_BYTES) continue;
      if (raw.byteLength > fileBytes)
        throw new Error(
          `ONNX export: tensor "${initializer.name}" (${raw.byteLength} bytes) is larger than a data file may be (${fileBytes} bytes)`,
        );
      let offset = Math.ceil(end / ALIGNMENT) * ALIGNMENT;
      if (fd < 0 || offset + raw.byteLength > fileBytes) {
        if (fd >= 0) closeSync(fd);
        files.push(`${modelFile}_data${files.length === 0 ? '' : `_${files.length}`}`);
        fd = openSync(join(dir, files.at(-1)!), 'w');
        offset = 0;
      }
      for (let done = 0; done < raw.byteLength; ) done += writeSync(fd, raw, done, raw.byteLength - done, offset + done);
      end = offset + raw.byteLength;
      bytes += raw.byteLength;
      tensors.set(
        initializer.name,
        create(TensorProtoSchema, {
          name: initializer.name,
          dims: initializer.dims.map(BigInt),
          dataType: dataTypeOf(initializer.data),
          dataLocation: TensorProto_DataLocation.EXTERNAL,
          externalData: [
            create(StringStringEntryProtoSchema, { key: 'location', value: files.at(-1)! }),
            create(StringStringEntryProtoSchema, { key: 'offset', value: String(offset) }),
            create(StringStringEntryProtoSchema, { key: 'length', value: String(raw.byteLength) }),
          ],
        }),
      );
    }
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  return { files, bytes, tensors };
}

/** External data files of `model.onnx` left by an earlier export that the new one does not use. */
function removeStaleDataFiles(onnxDir: string, keep: string[]): void {
  for (const file of readdirSync(onnxDir)) {
    if (/^model\.onnx_data(_\d+)?$/.test(file) && !keep.includes(file)) rmSync(join(onnxDir, file));
  }
}

/**
 * Records in `config.json` how many external data files transformers.js must fetch
 * (`transformers.js_config.use_external_data_format`), or removes that setting when there are none. The file
 * is left untouched when nothing changes (or absent); otherwise rewritten as Python writes it, other keys kept
 * in place.
 */
function updateTransformersJsConfig(dir: string, dataFiles: number): void {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return;
  const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const settings = { ...(json['transformers.js_config'] as Record<string, unknown> | undefined) };
  if ((settings.use_external_data_format ?? 0) === dataFiles) return;
  if (dataFiles > 0) settings.use_external_data_format = dataFiles;
  else delete settings.use_external_data_format;
  if (Object.keys(settings).length > 0) json['transformers.js_config'] = settings;
  else delete json['transformers.js_config'];
  rewriteFolderFile(dir, 'config.json', pythonJsonText(json)); // and its checksum, where kotune saved the folder
}

/**
 * Loads the reranker or embedder in `dir` (a local model folder) and writes its ONNX export into `dir/onnx`.
 */
export async function exportOnnx(
  dir: string,
  options: OnnxExportOptions & LoadOptions & { task?: XLMRobertaTask } = {},
): Promise<OnnxExportResult> {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new Error(`${dir}: not a model folder (the export is written into DIR/onnx, so DIR must be a local folder)`);
  const task = options.task ?? modelTask(dir);
  const model = task === 'reranker' ? await Reranker.load(dir, options) : await Embedder.load(dir, options);
  try {
    return await writeOnnx(model, dir, options);
  } finally {
    model.dispose();
  }
}
