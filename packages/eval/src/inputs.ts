/**
 * Evaluation inputs, each line checked with a `path:line: ` error that names the field:
 * - reranker sets: FlagEmbedding lines `{"query", "pos": [...], "neg": [...]}` (candidates = pos and neg in a
 *   seeded random order: in file order every positive would come first, a "first stage" that knows the
 *   answer, and a reranker whose scores tie would inherit that knowledge) or candidate lines `{"query",
 *   "candidates": [{"text", "relevance"}]}` listing a first stage's ranking best first (relevance > 0 is relevant);
 * - embedder sets: a corpus `{"id", "text"}` and queries `{"query", "relevant": [ids]}` (`id` optional).
 */
import { DataError, parseTrainExample, readJsonl, Rng } from '@kotune/data';

/** Seed of the candidate order of `{query, pos, neg}` lines (`readRerankQueries`). */
export const CANDIDATE_ORDER_SEED = 42;

export interface RerankQuery {
  query: string;
  /** First-stage order: a `candidates` line's, or pos + neg shuffled. */
  candidates: string[];
  /** Positions in `candidates` that are relevant. */
  relevant: Set<number>;
  line: number;
  /** Where the order of `candidates` comes from. */
  order: 'first-stage' | 'shuffled';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseCandidatesLine(value: Record<string, unknown>, path: string, line: number): RerankQuery {
  const fail = (field: string, detail: string): never => {
    throw new DataError(path, line, detail, { field });
  };
  if (typeof value.query !== 'string' || value.query.trim() === '') fail('query', 'query must be a non-empty string');
  if (!Array.isArray(value.candidates)) fail('candidates', 'candidates must be an array of {"text", "relevance"}');
  const candidates: string[] = [];
  const relevant = new Set<number>();
  (value.candidates as unknown[]).forEach((item, i) => {
    if (!isObject(item)) fail('candidates', `candidates[${i}] must be an object {"text", "relevance"}`);
    const { text, relevance } = item as Record<string, unknown>;
    if (typeof text !== 'string') fail('candidates', `candidates[${i}].text must be a string`);
    if (typeof relevance !== 'number' || !Number.isFinite(relevance)) fail('candidates', `candidates[${i}].relevance must be a number`);
    candidates.push(text as string);
    if ((relevance as number) > 0) relevant.add(i);
  });
  return { query: value.query as string, candidates, relevant, line, order: 'first-stage' };
}

/**
 * A reranker set. The candidates of a `{query, pos, neg}` line are shuffled by `Rng(seed, line)`: the same
 * order on every run, whatever the other lines.
 */
export async function readRerankQueries(path: string, { seed = CANDIDATE_ORDER_SEED }: { seed?: number } = {}): Promise<RerankQuery[]> {
  const queries: RerankQuery[] = [];
  for await (const { line, value } of readJsonl(path)) {
    if (isObject(value) && 'candidates' in value) {
      queries.push(parseCandidatesLine(value, path, line));
      continue;
    }
    const example = parseTrainExample(value, path, line);
    const listed = [...example.pos.map((text) => ({ text, relevant: true })), ...example.neg.map((text) => ({ text, relevant: false }))];
    new Rng(seed, line).shuffle(listed);
    queries.push({
      query: example.query,
      candidates: listed.map((c) => c.text),
      relevant: new Set(listed.flatMap((c, i) => (c.relevant ? [i] : []))),
      line,
      order: 'shuffled',
    });
  }
  if (queries.length === 0) throw new DataError(path, undefined, 'no queries');
  return queries;
}

function idOf(value: unknown, path: string, line: number, field: string): string {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new DataError(path, line, `${field} must be a non-empty string or a number`, { field });
}

/** Pass 1 over a corpus: the ids in order (duplicates are an error); texts are streamed later. */
export async function readCorpusIds(path: string): Promise<string[]> {
  const ids: string[] = [];
  const seen = new Map<string, number>();
  for await (const { line, value } of readJsonl(path)) {
    if (!isObject(value)) throw new DataError(path, line, 'expected a JSON object {"id", "text"}');
    const id = idOf(value.id, path, line, 'id');
    if (typeof value.text !== 'string') throw new DataError(path, line, 'text must be a string', { field: 'text' });
    const first = seen.get(id);
    if (first !== undefined) throw new DataError(path, line, `id '${id}' already used on line ${first}`, { field: 'id' });
    seen.set(id, line);
    ids.push(id);
  }
  if (ids.length === 0) throw new DataError(path, undefined, 'the corpus is empty');
  return ids;
}

export async function* corpusTexts(path: string): AsyncGenerator<string> {
  for await (const { value } of readJsonl(path)) yield (value as { text: string }).text;
}

export interface EvalQuery {
  id: string;
  query: string;
  relevant: Set<string>;
}

export async function readEvalQueries(path: string, corpusIds: ReadonlySet<string>): Promise<EvalQuery[]> {
  const queries: EvalQuery[] = [];
  for await (const { line, value } of readJsonl(path)) {
    if (!isObject(value)) throw new DataError(path, line, 'expected a JSON object {"query", "relevant": [ids]}');
    if (typeof value.query !== 'string' || value.query.trim() === '')
      throw new DataError(path, line, 'query must be a non-empty string', { field: 'query' });
    if (!Array.isArray(value.relevant)) throw new DataError(path, line, 'relevant must be an array of corpus ids', { field: 'relevant' });
    const relevant = new Set(value.relevant.map((id, i) => idOf(id, path, line, `relevant[${i}]`)));
    for (const id of relevant) {
      if (!corpusIds.has(id)) throw new DataError(path, line, `relevant id '${id}' is not in the corpus`, { field: 'relevant' });
    }
    const id = value.id === undefined ? `line${line}` : idOf(value.id, path, line, 'id');
    queries.push({ id, query: value.query, relevant });
  }
  if (queries.length === 0) throw new DataError(path, undefined, 'no queries');
  return queries;
}
