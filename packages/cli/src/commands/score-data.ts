/**
 * `kotune score-data`: adds a teacher reranker's `pos_scores` / `neg_scores` (one per passage, raw logits
 * unless `--normalize`) to `{"query", "pos", "neg"}` JSONL, for FlagEmbedding-style distillation. Other
 * fields are kept; existing scores are replaced.
 */
import { parseTrainExample, readJsonl } from '@kotune/data';
import { initBackend } from '@kotune/engine';
import { loadScorer, scoreCandidates, type RerankQuery } from '@kotune/eval';
import { writeFileAtomic } from '@kotune/metrics';
import { intFlag, parseCommandArgs, type Flags } from '../args.ts';

const SYNOPSIS = '--input FILE --output FILE --reranker MODEL [--normalize]';
const FLAGS: Flags = {
  input: { type: 'string', required: true, help: '{query, pos, neg} JSONL' },
  output: { type: 'string', required: true, help: 'where to write the lines with pos_scores / neg_scores' },
  reranker: { type: 'string', required: true, help: 'teacher reranker folder or id' },
  normalize: { type: 'boolean', help: 'sigmoid of the logits (default: raw logits)' },
  'batch-size': { type: 'string', default: '32', help: 'pairs per forward pass' },
  'max-length': { type: 'string', help: 'tokens per pair, special tokens included (default 512)' },
  quiet: { type: 'boolean', help: 'no progress bar' },
};

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('score-data', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const v = parsed.values;
  const batchSize = intFlag('score-data', 'batch-size', v['batch-size'], 32);
  const maxLength = v['max-length'] === undefined ? undefined : intFlag('score-data', 'max-length', v['max-length'], 512);
  const input = v.input as string;
  const raws: Record<string, unknown>[] = [];
  const groups: (Pick<RerankQuery, 'query' | 'candidates'> & { posCount: number })[] = [];
  for await (const { line, value } of readJsonl(input)) {
    const example = parseTrainExample(value, input, line);
    raws.push(value as Record<string, unknown>);
    groups.push({ query: example.query, candidates: [...example.pos, ...example.neg], posCount: example.pos.length });
  }
  await initBackend({ backend: v.backend as string | undefined });
  const scorer = await loadScorer(v.reranker as string, { batchSize, maxLength, normalize: Boolean(v.normalize) });
  let scores: number[][];
  try {
    scores = await scoreCandidates(groups, scorer.score, { label: 'scoring', progress: !v.quiet, chunkPairs: Math.max(batchSize, 256) });
  } finally {
    scorer.dispose();
  }
  const out = raws.map((raw, i) =>
    JSON.stringify({
      ...raw,
      pos_scores: scores[i].slice(0, groups[i].posCount),
      neg_scores: scores[i].slice(groups[i].posCount),
    }),
  );
  writeFileAtomic(v.output as string, out.length > 0 ? `${out.join('\n')}\n` : '');
  console.log(
    `scored ${groups.length} lines (${scores.reduce((n, s) => n + s.length, 0)} pairs) with ${v.reranker as string}${v.normalize ? ' (sigmoid)' : ' (raw logits)'} → ${v.output as string}`,
  );
}
