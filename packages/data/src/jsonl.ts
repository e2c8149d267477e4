import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { DataError } from './errors.ts';

export interface JsonlRecord {
  /** 1-based physical line number (blank lines count). */
  line: number;
  value: unknown;
}

export interface ReadJsonlOptions {
  /** Skip lines that are not valid JSON instead of throwing; each is passed to `onBadLine`. */
  skipBadLines?: boolean;
  onBadLine?: (error: DataError) => void;
  /** Bytes read per chunk (default 64 KiB). */
  chunkSize?: number;
}

/**
 * Reads a JSON Lines file as a stream: memory stays bounded by the longest line, and since the next
 * chunk is only read when the consumer asks for more records, a slow consumer holds the file back
 * (backpressure) instead of letting lines pile up. A UTF-8 byte order mark on the first line and `\r\n`
 * endings are accepted; blank lines are skipped but still counted so that line numbers match an editor's.
 *
 * Our own splitter rather than `node:readline` or `ndjson`: ndjson drops blank lines without counting
 * them (so it cannot give line numbers) and leaves the BOM in; readline also ends a line at a lone `\r`,
 * which editors that count `\n` do not.
 */
export async function* readJsonl(path: string, options: ReadJsonlOptions = {}): AsyncGenerator<JsonlRecord> {
  const stream = createReadStream(path, { highWaterMark: options.chunkSize ?? 64 * 1024 });
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let line = 0;

  function parse(text: string): JsonlRecord | undefined {
    line += 1;
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return undefined;
    try {
      return { line, value: JSON.parse(text) };
    } catch (error) {
      const bad = new DataError(path, line, `invalid JSON (${(error as Error).message})`, { reason: 'invalid JSON' });
      if (!options.skipBadLines) throw bad;
      options.onBadLine?.(bad);
      return undefined;
    }
  }

  try {
    for await (const chunk of stream) {
      pending += decoder.write(chunk as Buffer);
      let start = 0;
      for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n', start)) {
        const record = parse(pending.slice(start, end));
        start = end + 1;
        if (record) yield record;
      }
      pending = pending.slice(start);
    }
  } catch (error) {
    if (error instanceof DataError) throw error;
    throw new DataError(path, undefined, `cannot read (${(error as Error).message})`, { reason: 'unreadable' });
  } finally {
    stream.destroy();
  }
  pending += decoder.end();
  if (pending !== '') {
    const record = parse(pending);
    if (record) yield record;
  }
}
