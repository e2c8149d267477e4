import { DataError } from './errors.ts';
import { readJsonl } from './jsonl.ts';

/**
 * One training line, FlagEmbedding's format: `{"query": str, "pos": [str], "neg": [str]}` with optional
 * teacher scores (`pos_scores`, `neg_scores`, one per passage, for knowledge distillation) and optional
 * instructions (`prompt` for embedders; `query_prompt` / `passage_prompt` for rerankers), which replace the
 * configured instruction for that line only. Other fields are ignored. A missing `neg` is read as `[]`.
 */
export interface TrainExample {
  query: string;
  pos: string[];
  neg: string[];
  posScores?: number[];
  negScores?: number[];
  prompt?: string;
  queryPrompt?: string;
  passagePrompt?: string;
  /** Where the line came from, for error messages. */
  path: string;
  line: number;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Checks one parsed JSON line; throws a `DataError` naming the field at fault. */
export function parseTrainExample(value: unknown, path: string, line: number): TrainExample {
  const fail = (field: string | undefined, detail: string, reason: string): never => {
    throw new DataError(path, line, detail, { field, reason });
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(undefined, `expected a JSON object, got ${describe(value)}`, 'not an object');
  }
  const record = value as Record<string, unknown>;

  const query = record.query;
  if (query === undefined) fail('query', 'missing "query"', 'missing query');
  if (typeof query !== 'string') fail('query', `query is ${describe(query)}, expected a string`, 'query not a string');
  if ((query as string).trim() === '') fail('query', 'query is empty', 'empty query');

  const strings = (field: string, required: boolean): string[] => {
    const list = record[field];
    if (list === undefined && !required) return [];
    if (list === undefined) fail(field, `missing "${field}"`, `missing ${field}`);
    if (!Array.isArray(list)) fail(field, `${field} is ${describe(list)}, expected an array of strings`, `${field} not an array`);
    (list as unknown[]).forEach((item, i) => {
      if (typeof item !== 'string') fail(field, `${field}[${i}] is ${describe(item)}, expected a string`, `${field} item not a string`);
      // An empty passage would train (and evaluate) on a pair of the query and nothing.
      if ((item as string).trim() === '') fail(field, `${field}[${i}] is an empty string`, `empty ${field} passage`);
    });
    return list as string[];
  };
  const pos = strings('pos', true);
  if (pos.length === 0) fail('pos', 'pos is empty', 'empty pos');
  const neg = strings('neg', false);

  const scores = (field: string, passages: string[], passagesField: string): number[] | undefined => {
    const list = record[field];
    if (list === undefined) return undefined;
    if (!Array.isArray(list)) fail(field, `${field} is ${describe(list)}, expected an array of numbers`, `${field} not an array`);
    (list as unknown[]).forEach((item, i) => {
      if (typeof item !== 'number') fail(field, `${field}[${i}] is ${describe(item)}, expected a number`, `${field} item not a number`);
      if (!Number.isFinite(item)) fail(field, `${field}[${i}] is not a finite number`, `${field} item not finite`);
    });
    if ((list as number[]).length !== passages.length) {
      fail(field, `${field} has ${(list as number[]).length} items but ${passagesField} has ${passages.length}`, `${field} length`);
    }
    return list as number[];
  };
  const example: TrainExample = { query: query as string, pos, neg, path, line };
  const posScores = scores('pos_scores', pos, 'pos');
  const negScores = scores('neg_scores', neg, 'neg');
  if (posScores) example.posScores = posScores;
  if (negScores) example.negScores = negScores;

  for (const [field, key] of [
    ['prompt', 'prompt'],
    ['query_prompt', 'queryPrompt'],
    ['passage_prompt', 'passagePrompt'],
  ] as const) {
    const text = record[field];
    if (text === undefined) continue;
    if (typeof text !== 'string') fail(field, `${field} is ${describe(text)}, expected a string`, `${field} not a string`);
    example[key] = text as string;
  }
  return example;
}

/** Counts the lines skipped under `skip_bad_lines`, by reason, keeping the first few messages to show. */
export class BadLineTally {
  count = 0;
  readonly byReason = new Map<string, number>();
  readonly examples: DataError[] = [];

  constructor(private readonly keepExamples = 5) {}

  add(error: DataError): void {
    this.count += 1;
    this.byReason.set(error.reason, (this.byReason.get(error.reason) ?? 0) + 1);
    if (this.examples.length < this.keepExamples) this.examples.push(error);
  }

  /** e.g. `skipped 3 bad lines: 2 invalid JSON, 1 empty pos\n  a.jsonl:4: invalid JSON (...)` */
  summary(): string {
    if (this.count === 0) return 'no bad lines';
    const reasons = [...this.byReason].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const head = `skipped ${this.count} bad line${this.count === 1 ? '' : 's'}: ${reasons.map(([r, n]) => `${n} ${r}`).join(', ')}`;
    return [head, ...this.examples.map((e) => `  ${e.message}`)].join('\n');
  }
}

export interface ReadTrainOptions {
  /** Skip malformed or invalid lines instead of stopping at the first; each goes to `onBadLine`. */
  skipBadLines?: boolean;
  onBadLine?: (error: DataError) => void;
}

/** Streams the valid training lines of one or more JSONL files, in file order. */
export async function* readTrainExamples(paths: readonly string[], options: ReadTrainOptions = {}): AsyncGenerator<TrainExample> {
  for (const path of paths) {
    for await (const { line, value } of readJsonl(path, options)) {
      let example: TrainExample;
      try {
        example = parseTrainExample(value, path, line);
      } catch (error) {
        if (!(error instanceof DataError) || !options.skipBadLines) throw error;
        options.onBadLine?.(error);
        continue;
      }
      yield example;
    }
  }
}
