/**
 * `kotune score --model M --input pairs.jsonl [--normalize] [--max-length N] [--batch-size N] [--output FILE]`:
 * one `{"score": x}` line per `{"query", "passage"}` input line, in order; raw logits, or their sigmoid with
 * `--normalize` (FlagEmbedding `compute_score`). Lines are read and scored a chunk at a time, so memory stays
 * constant whatever the file's length. Also home of the chunked JSONL in/out shared with `encode`.
 */
import { createWriteStream, existsSync, openSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { DataError, fileErrorReason, readJsonl } from '@kotune/data';
import { initBackend } from '@kotune/engine';
import { Reranker } from '@kotune/xlm-roberta';
import { intFlag, parseCommandArgs, type Flags } from '../args.ts';

const SYNOPSIS = '--model M --input pairs.jsonl [--normalize] [--max-length N] [--batch-size N] [--output FILE]';
const FLAGS: Flags = {
  model: { type: 'string', required: true, help: 'reranker folder or Hugging Face repo id' },
  input: { type: 'string', required: true, help: 'JSONL, one {"query": ..., "passage": ...} per line' },
  normalize: { type: 'boolean', help: 'sigmoid of the logits (default: raw logits)' },
  'max-length': { type: 'string', help: "tokens per pair, special tokens included (default 512, capped at the model's positions)" },
  'batch-size': { type: 'string', default: '32', help: 'pairs per forward pass' },
  output: { type: 'string', help: 'write the lines here (default: stdout)' },
};

/** Lines read before a chunk is processed: enough for full sorted batches, small enough for constant memory. */
export const CHUNK_LINES = 1024;

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('score', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const v = parsed.values;
  const batchSize = intFlag('score', 'batch-size', v['batch-size'], 32);
  const maxLength = v['max-length'] === undefined ? undefined : intFlag('score', 'max-length', v['max-length'], 512);
  const input = v.input as string;
  await initBackend({ backend: v.backend as string | undefined });
  const reranker = await Reranker.load(v.model as string);
  try {
    await mapJsonlChunks(
      input,
      v.output as string | undefined,
      (value, line) => [stringField(value, 'query', input, line), stringField(value, 'passage', input, line)] as [string, string],
      async (pairs) => {
        const scores = await reranker.score(pairs, { normalize: Boolean(v.normalize), batchSize, maxLength });
        return scores.map((score) => JSON.stringify({ score }));
      },
    );
  } finally {
    reranker.dispose();
  }
}

/** `value[field]` as a string, or a `path:line: ` error naming the field. */
export function stringField(value: unknown, field: string, path: string, line: number): string {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new DataError(path, line, `expected a JSON object with "${field}"`);
  const text = (value as Record<string, unknown>)[field];
  if (typeof text !== 'string') {
    throw new DataError(
      path,
      line,
      `field "${field}" ${text === undefined ? 'is missing' : `must be a string, got ${JSON.stringify(text)}`}`,
      { field },
    );
  }
  return text;
}

/**
 * Streams `input` through `process` in chunks of `CHUNK_LINES` parsed lines and writes the returned lines, in
 * order, to `output` (written to a temporary name and renamed at the end; removed on error) or stdout.
 */
export async function mapJsonlChunks<T>(
  input: string,
  output: string | undefined,
  parse: (value: unknown, line: number) => T,
  process: (items: T[]) => Promise<string[]>,
): Promise<void> {
  const temporary = output ? `${output}.tmp-${globalThis.process.pid}` : undefined;
  // Opened here, so that a folder that is missing or not writable stops the command before any work, in words.
  if (output && existsSync(output) && statSync(output).isDirectory()) throw new Error(`--output ${output} is a folder; give a file path`);
  let fd: number | undefined;
  try {
    if (temporary) fd = openSync(temporary, 'w');
  } catch (error) {
    throw new Error(`--output ${output}: cannot write there: ${fileErrorReason(error) ?? (error as Error).message}`);
  }
  const sink: NodeJS.WritableStream = fd !== undefined ? createWriteStream('', { fd }) : globalThis.process.stdout;
  const write = async (lines: string[]) => {
    if (lines.length > 0 && !sink.write(`${lines.join('\n')}\n`)) await once(sink, 'drain');
  };
  try {
    let chunk: T[] = [];
    for await (const { line, value } of readJsonl(input)) {
      chunk.push(parse(value, line));
      if (chunk.length === CHUNK_LINES) {
        await write(await process(chunk));
        chunk = [];
      }
    }
    await write(await process(chunk));
    if (temporary) {
      (sink as WriteStream).end();
      await once(sink, 'finish');
      renameSync(temporary, output!);
    }
  } catch (error) {
    if (temporary) {
      (sink as WriteStream).destroy();
      rmSync(temporary, { force: true });
    }
    throw error;
  }
}
