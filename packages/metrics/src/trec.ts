/**
 * TREC qrels (`qid iter docid relevance`) and run (`qid Q0 docid rank score tag`) files, whitespace
 * separated, as trec_eval reads them. Blank lines are skipped; any other malformed line is an error that
 * starts with `path:line: ` (1-based, blank lines counted).
 */
import { readFileSync } from 'node:fs';
import { evaluateRankings, rankCandidates, DEFAULT_CUTOFFS, type IrCutoffs, type IrEvaluation, type ScoredCandidate } from './ir.ts';
import { writeFileAtomic } from './atomic.ts';

/** query id → document id → relevance (> 0 means relevant). */
export type Qrels = Map<string, Map<string, number>>;
/** query id → scored documents in file order (each document once, with its first score). */
export type Run = Map<string, ScoredCandidate[]>;

export class TrecFormatError extends Error {
  constructor(
    readonly path: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${path}:${line}: ${detail}`);
    this.name = 'TrecFormatError';
  }
}

function* fields(path: string): Generator<{ line: number; parts: string[] }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`${path}: cannot read (${(error as Error).message})`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const trimmed = lines[i].trim();
    if (trimmed === '') continue;
    yield { line: i + 1, parts: trimmed.split(/\s+/) };
  }
}

export function readQrels(path: string): Qrels {
  const qrels: Qrels = new Map();
  for (const { line, parts } of fields(path)) {
    if (parts.length !== 4) throw new TrecFormatError(path, line, `expected 4 fields "qid iter docid relevance", got ${parts.length}`);
    const [qid, , docid, relText] = parts;
    const relevance = Number(relText);
    if (!Number.isInteger(relevance)) throw new TrecFormatError(path, line, `relevance must be an integer, got '${relText}'`);
    let docs = qrels.get(qid);
    if (!docs) qrels.set(qid, (docs = new Map()));
    if (docs.has(docid)) throw new TrecFormatError(path, line, `document '${docid}' is judged twice for query '${qid}'`);
    docs.set(docid, relevance);
  }
  return qrels;
}

/** Reads a run; a document listed twice for a query keeps its first line (docs/evaluation.md). */
export function readRun(path: string): Run {
  const run: Run = new Map();
  const seen = new Map<string, Set<string>>();
  for (const { line, parts } of fields(path)) {
    if (parts.length !== 6) throw new TrecFormatError(path, line, `expected 6 fields "qid Q0 docid rank score tag", got ${parts.length}`);
    const [qid, , docid, rankText, scoreText] = parts;
    if (!/^-?\d+$/.test(rankText)) throw new TrecFormatError(path, line, `rank must be an integer, got '${rankText}'`);
    const score = Number(scoreText);
    if (scoreText === '' || !Number.isFinite(score))
      throw new TrecFormatError(path, line, `score must be a finite number, got '${scoreText}'`);
    let ids = seen.get(qid);
    if (!ids) {
      seen.set(qid, (ids = new Set()));
      run.set(qid, []);
    }
    if (ids.has(docid)) continue;
    ids.add(docid);
    run.get(qid)!.push({ id: docid, score });
  }
  return run;
}

export function formatQrels(qrels: Qrels): string {
  const lines: string[] = [];
  for (const [qid, docs] of qrels) for (const [docid, relevance] of docs) lines.push(`${qid} 0 ${docid} ${relevance}`);
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** Ranks each query's documents (score desc, id asc) and numbers them from 1. */
export function formatRun(run: ReadonlyMap<string, readonly ScoredCandidate[]>, tag = 'kotune'): string {
  if (/\s/.test(tag) || tag === '') throw new Error(`run tag must be one word, got '${tag}'`);
  const lines: string[] = [];
  for (const [qid, candidates] of run) {
    const scoreOf = new Map<string, number>();
    for (const c of candidates) if (!scoreOf.has(c.id)) scoreOf.set(c.id, c.score);
    rankCandidates(candidates).forEach((docid, i) => lines.push(`${qid} Q0 ${docid} ${i + 1} ${scoreOf.get(docid)} ${tag}`));
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

export function writeQrels(path: string, qrels: Qrels): void {
  writeFileAtomic(path, formatQrels(qrels));
}

export function writeRun(path: string, run: ReadonlyMap<string, readonly ScoredCandidate[]>, tag = 'kotune'): void {
  writeFileAtomic(path, formatRun(run, tag));
}

export interface TrecEvaluation extends IrEvaluation {
  /** Qrels queries with a relevant document but no line in the run: each scored 0 on every metric. */
  missingFromRun: string[];
  /** Run queries absent from the qrels (ignored). */
  notInQrels: string[];
}

/** sentence-transformers means of a TREC run against TREC qrels (relevance > 0 is relevant). */
export function evaluateRun(qrels: Qrels, run: Run, cutoffs: IrCutoffs = DEFAULT_CUTOFFS): TrecEvaluation {
  const missingFromRun: string[] = [];
  const queries = [...qrels].map(([qid, docs]) => {
    const relevant = new Set([...docs].filter(([, rel]) => rel > 0).map(([docid]) => docid));
    const candidates = run.get(qid);
    if (!candidates && relevant.size > 0) missingFromRun.push(qid);
    return { ranked: candidates ? rankCandidates(candidates) : [], relevant };
  });
  const notInQrels = [...run.keys()].filter((qid) => !qrels.has(qid));
  return { ...evaluateRankings(queries, cutoffs), missingFromRun, notInQrels };
}
