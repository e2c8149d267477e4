/**
 * A small reranker run for dry-run tests (here and in packages/cli/test): 23 training lines, the first 5 as the
 * eval file, batch 2 with accumulation 3 over 2 epochs, in a fresh temporary folder (its output_dir `out` there).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function writeDryRunFixture(prefix: string): { dir: string; lines: string[] } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const lines = Array.from({ length: 23 }, (_, i) =>
    JSON.stringify({ query: `질문 ${i}`, pos: [`답 ${i}`], neg: [`오답 ${i}a`, `오답 ${i}b`, `오답 ${i}c`] }),
  );
  writeFileSync(join(dir, 'train.jsonl'), `${lines.join('\n')}\n`);
  writeFileSync(join(dir, 'eval.jsonl'), `${lines.slice(0, 5).join('\n')}\n`);
  writeFileSync(
    join(dir, 'run.json'),
    JSON.stringify({
      _comment: 'tiny',
      task: 'reranker',
      model_name_or_path: 'BAAI/bge-reranker-large',
      train_data: 'train.jsonl',
      eval_data: 'eval.jsonl',
      output_dir: 'out',
      per_device_train_batch_size: 2,
      gradient_accumulation_steps: 3,
      train_group_size: 3,
      num_train_epochs: 2,
      warmup_ratio: 0.1,
    }),
  );
  return { dir, lines };
}
