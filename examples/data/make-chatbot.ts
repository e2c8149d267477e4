/**
 * Builds the demo reranker data from ChatbotData.csv (songys/Chatbot_data, MIT):
 *
 *   chatbot-train.jsonl  3000 questions, each {query, pos: [its answer], neg: 7 other answers}
 *   chatbot-eval.jsonl    200 held-out questions (none in train), each with 1 positive and 9 negatives
 *
 * Negatives are answers of other questions, never the question's own answer text (answers repeat a lot
 * in this data): 3 (eval: 4) "hard" ones, answers of the questions sharing the most character bigrams
 * with this one, skipping near-paraphrases (Dice ≥ 0.7) whose answers would likely fit too; 2 answers of
 * questions with the same label (daily / breakup / love); the rest random. Deterministic for a seed.
 *
 *   pnpm exec tsx examples/data/make-chatbot.ts [path/to/ChatbotData.csv] [seed]
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@kotune/data';
import { writeFileAtomic } from '@kotune/metrics';
import { bigrams } from './bigrams.ts';

const here = dirname(fileURLToPath(import.meta.url));
const csvPath = process.argv[2] ?? join(here, '../../../shared/data/chatbot/ChatbotData.csv'); // ../shared beside the checkout
const seed = Number(process.argv[3] ?? 42);
const TRAIN_QUERIES = 3000;
const EVAL_QUERIES = 200;
const PARAPHRASE_DICE = 0.7;
const HARD_CANDIDATES = 20;

interface Row {
  question: string;
  answer: string;
  label: string;
}

/** RFC 4180: quoted fields may hold commas, newlines and doubled quotes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') field += text[++i];
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}

const [header, ...records] = parseCsv(readFileSync(csvPath, 'utf8'));
if (header.join(',') !== 'Q,A,label') throw new Error(`${csvPath}:1: expected the header Q,A,label, got ${header.join(',')}`);
const seen = new Set<string>();
const rows: Row[] = [];
records.forEach((fields, i) => {
  if (fields.length !== 3) throw new Error(`${csvPath}: record ${i + 2} has ${fields.length} fields, expected 3`);
  const [question, answer, label] = fields.map((f) => f.trim());
  if (question === '' || answer === '' || seen.has(question)) return;
  seen.add(question);
  rows.push({ question, answer, label });
});

const grams = rows.map((row) => bigrams(row.question));
const byGram = new Map<string, number[]>();
grams.forEach((set, i) => set.forEach((g) => (byGram.get(g) ?? byGram.set(g, []).get(g)!).push(i)));
const byLabel = new Map<string, number[]>();
rows.forEach((row, i) => (byLabel.get(row.label) ?? byLabel.set(row.label, []).get(row.label)!).push(i));

const rng = new Rng(seed);
const order = rng.shuffle(rows.map((_, i) => i));
const evalRows = order.slice(0, EVAL_QUERIES);
const trainRows = order.slice(EVAL_QUERIES, EVAL_QUERIES + TRAIN_QUERIES);

/** Answers of the most similar questions (by bigram Dice), best first, paraphrases left out. */
function similarAnswers(i: number): string[] {
  const shared = new Map<number, number>();
  for (const g of grams[i]) for (const j of byGram.get(g)!) if (j !== i) shared.set(j, (shared.get(j) ?? 0) + 1);
  const ranked = [...shared]
    .map(([j, n]) => ({ j, dice: (2 * n) / (grams[i].size + grams[j].size) }))
    .filter(({ dice }) => dice < PARAPHRASE_DICE)
    .sort((a, b) => b.dice - a.dice || a.j - b.j);
  const answers: string[] = [];
  for (const { j } of ranked) {
    const answer = rows[j].answer;
    if (answer !== rows[i].answer && !answers.includes(answer)) answers.push(answer);
    if (answers.length === HARD_CANDIDATES) break;
  }
  return answers;
}

function negativesFor(i: number, hard: number, sameLabel: number, random: number): string[] {
  const chosen = new Set<string>();
  const own = rows[i].answer;
  const pickFrom = (candidates: () => string | undefined, count: number) => {
    for (let tries = 0, wanted = chosen.size + count; chosen.size < wanted && tries < 1000; tries++) {
      const answer = candidates();
      if (answer !== undefined && answer !== own) chosen.add(answer);
    }
  };
  const similar = similarAnswers(i);
  for (const answer of rng.sample(similar, Math.min(hard, similar.length))) chosen.add(answer);
  const label = byLabel.get(rows[i].label)!;
  pickFrom(() => rows[rng.choice(label)].answer, sameLabel + hard - chosen.size);
  pickFrom(() => rows[rng.int(rows.length)].answer, hard + sameLabel + random - chosen.size);
  return rng.shuffle([...chosen]);
}

function writeJsonl(name: string, indices: number[], hard: number, sameLabel: number, random: number): number {
  const lines = indices.map((i) =>
    JSON.stringify({ query: rows[i].question, pos: [rows[i].answer], neg: negativesFor(i, hard, sameLabel, random) }),
  );
  writeFileAtomic(join(here, name), lines.join('\n') + '\n');
  return lines.length;
}

const trainCount = writeJsonl('chatbot-train.jsonl', trainRows, 3, 2, 2);
const evalCount = writeJsonl('chatbot-eval.jsonl', evalRows, 4, 2, 3);
console.log(`${rows.length} distinct questions → ${trainCount} train, ${evalCount} eval lines (seed ${seed})`);
