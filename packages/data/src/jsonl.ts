import { createReadStream } from 'node:fs';
import { DataError, fileErrorReason } from './errors.ts';

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
 * The offset of the first character of `text` that breaks the JSON grammar (`text.length` when it ends too
 * soon), or -1 when there is none. V8 reports an offset for some errors only ("Unexpected token" has none), so
 * the error is found again by this scanner, run only once a parse has failed.
 */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const digits = (required: boolean) => {
    if (required && !/[0-9]/.test(text[i] ?? '')) fail();
    while (/[0-9]/.test(text[i] ?? '')) i++;
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (c: string) => (text[i] === c ? i++ : fail());
  const string = () => {
    expect('"');
    for (;;) {
      const c = text[i];
      if (c === undefined || c < ' ') fail();
      i++;
      if (c === '"') return;
      if (c !== '\\') continue;
      const escaped = text[i];
      if (escaped === 'u') {
        i++;
        for (let k = 0; k < 4; k++)
          if (/[0-9a-fA-F]/.test(text[i] ?? '')) i++;
          else fail();
      } else if (escaped !== undefined && '"\\/bfnrt'.includes(escaped)) i++;
      else fail();
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          string();
          ws();
          expect(':');
        }
        value();
        ws();
        if (text[i] !== ',') break;
        i++;
      }
      expect(close);
    } else if (c === '"') string();
    else if (c === 't' || c === 'f' || c === 'n') {
      for (const letter of c === 't' ? 'true' : c === 'f' ? 'false' : 'null') expect(letter);
    } else {
      if (text[i] === '-') i++;
      if (text[i] === '0') i++;
      else digits(true);
      if (text[i] === '.') {
        i++;
        digits(true);
      }
      if (text[i] === 'e' || text[i] === 'E') {
        i++;
        if (text[i] === '+' || text[i] === '-') i++;
        digits(true);
      }
    }
  };
  try {
    value();
    ws();
    return i < text.length ? i : -1;
  } catch (at) {
    if (typeof at === 'number') return at;
    return -1; // nesting deeper than the stack: no offset
  }
}

/**
 * Where a `JSON.parse` error of `text` stands: 1-based line and column (null when not found), and V8's reason
 * without its offset or quoted context.
 */
export function jsonSyntaxError(text: string, error: unknown): { line: number; column: number | null; reason: string } {
  const offset = jsonErrorOffset(text);
  const before = text.slice(0, Math.max(offset, 0));
  const reason = (error as Error).message
    .replace(/( in JSON)? at position \d+( \(line \d+ column \d+\))?$/, '')
    .replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, '')
    .replace(/^Unexpected end of JSON input$/, 'unexpected end of the text');
  if (offset < 0) return { line: 1, column: null, reason };
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n'), reason };
}

/**
 * Reads a JSON Lines file as a stream: memory stays bounded by the longest line, and since the next
 * chunk is only read when the consumer asks for more records, a slow consumer holds the file back
 * (backpressure) instead of letting lines pile up. A UTF-8 byte order mark on the first line and `\r\n`
 * endings are accepted; blank lines are skipped but still counted so that line numbers match an editor's.
 * A line that is not valid UTF-8 is a bad line (never decoded into U+FFFD replacement characters).
 *
 * Our own splitter rather than `node:readline` or `ndjson`: ndjson drops blank lines without counting
 * them (so it cannot give line numbers) and leaves the BOM in; readline also ends a line at a lone `\r`,
 * which editors that count `\n` do not.
 */
export async function* readJsonl(path: string, options: ReadJsonlOptions = {}): AsyncGenerator<JsonlRecord> {
  const stream = createReadStream(path, { highWaterMark: options.chunkSize ?? 64 * 1024 });
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  /** The bytes of the line being read, in pieces until its newline comes (a newline byte is never inside a UTF-8 character). */
  let pending: Buffer[] = [];
  let line = 0;

  function bad(detail: string, reason: string): undefined {
    const error = new DataError(path, line, detail, { reason });
    if (!options.skipBadLines) throw error;
    options.onBadLine?.(error);
    return undefined;
  }

  function parse(bytes: Buffer): JsonlRecord | undefined {
    line += 1;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      return bad('invalid UTF-8 (the file must be UTF-8 text)', 'invalid UTF-8');
    }
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return undefined;
    try {
      return { line, value: JSON.parse(text) };
    } catch (error) {
      const { column, reason } = jsonSyntaxError(text, error);
      return bad(`invalid JSON${column === null ? '' : ` at column ${column}`} (${reason})`, 'invalid JSON');
    }
  }

  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let end = chunk.indexOf(10); end !== -1; end = chunk.indexOf(10, start)) {
        const piece = chunk.subarray(start, end);
        const record = parse(pending.length === 0 ? piece : Buffer.concat([...pending, piece]));
        pending = [];
        start = end + 1;
        if (record) yield record;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
  } catch (error) {
    if (error instanceof DataError) throw error;
    throw new DataError(path, undefined, `cannot read: ${fileErrorReason(error) ?? (error as Error).message}`, { reason: 'unreadable' });
  } finally {
    stream.destroy();
  }
  if (pending.length > 0) {
    const record = parse(Buffer.concat(pending));
    if (record) yield record;
  }
}
