/**
 * BM25 first stage over tokenizer pieces vs whitespace words (the choice `kotune mine` makes when no
 * embedder is given), on shipped Korean pairs: the first text of each pair is a query, every distinct second
 * text of the file is the corpus, the pair's own second text is the relevant document. Question pairs: the
 * `is_duplicate = 1` rows of `kor_pair_train.csv`; KorSTS: the train pairs scored ≥ 4 (near paraphrases).
 * Korean attaches particles and endings to words (사랑을, 사랑이, 사랑해), so whole words rarely match; the
 * Unigram pieces split those off.
 *
 *   pnpm bench bm25-pieces
 */
import { readFileSync } from 'node:fs';
import { evaluateRankings, type IrCutoffs } from '@kotune/metrics';
import { XLMRTokenizer } from '@kotune/tokenizer';
import { Bm25Index, whitespaceWords } from '../src/index.ts';

const root = new URL('../../../', import.meta.url).pathname;

/** RFC 4180 rows (quoted fields with commas, doubled quotes, CRLF); the BOM is dropped. */
function parseCsv(text: string): string[][] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n') {
      row.push(field.replace(/\r$/, ''));
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

interface PairSet {
  name: string;
  corpus: string[];
  queries: { query: string; relevant: Set<number> }[];
}

function pairSet(name: string, pairs: [string, string][]): PairSet {
  const corpus = [...new Set(pairs.map(([, second]) => second))];
  const rowOf = new Map(corpus.map((text, i) => [text, i]));
  return { name, corpus, queries: pairs.map(([query, second]) => ({ query, relevant: new Set([rowOf.get(second)!]) })) };
}

function questionPairs(): PairSet {
  const rows = parseCsv(readFileSync('/work/shared/data/question-pair/kor_pair_train.csv', 'utf8'));
  const [q1, q2, dup] = ['question1', 'question2', 'is_duplicate'].map((name) => rows[0].indexOf(name));
  const body = rows.slice(1).filter((r) => r.length >= rows[0].length && r[dup] === '1');
  return pairSet(
    'question-pair train (duplicates)',
    body.map((r) => [r[q1], r[q2]]),
  );
}

function korSts(): PairSet {
  const lines = readFileSync('/work/shared/data/kornlu/KorSTS_sts-train.tsv', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'));
  const pairs = lines.filter((f) => f.length >= 7 && Number(f[4]) >= 4 && f[5] !== f[6]).map((f) => [f[5], f[6]] as [string, string]);
  return pairSet('KorSTS train (score >= 4)', pairs);
}

const tokenizer = XLMRTokenizer.fromFolder(`${root}test/fixtures/xlmr-tiny`);
const cutoffs: IrCutoffs = { accuracyAtK: [1, 10], precisionRecallAtK: [1, 10, 100], mrrAtK: [10], ndcgAtK: [10], mapAtK: [100] };

function measure(set: PairSet, name: string, tokenize: (text: string) => (string | number)[]) {
  const started = performance.now();
  const index = new Bm25Index(set.corpus.map(tokenize));
  const { means, evaluated } = evaluateRankings(
    set.queries.map((q) => ({ ranked: index.search(tokenize(q.query), 100).map((h) => h.index), relevant: q.relevant })),
    cutoffs,
  );
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `  ${name.padEnd(18)} recall@1 ${means['recall@1'].toFixed(4)}  recall@10 ${means['recall@10'].toFixed(4)}  recall@100 ${means['recall@100'].toFixed(4)}  mrr@10 ${means['mrr@10'].toFixed(4)}  ndcg@10 ${means['ndcg@10'].toFixed(4)}  (${evaluated} queries, ${seconds.toFixed(1)} s)`,
  );
}

for (const set of [questionPairs(), korSts()]) {
  console.log(`${set.name}: ${set.queries.length} queries, ${set.corpus.length} distinct documents`);
  measure(set, 'whitespace words', whitespaceWords);
  measure(set, 'tokenizer pieces', (text) => tokenizer.tokenize(text));
}
