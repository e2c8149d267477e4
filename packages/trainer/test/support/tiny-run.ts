/**
 * Small runs for the trainer's tests: a toy Korean {query, pos, neg} file, and configs for the tiny fixture
 * models (test/fixtures/xlmr-tiny: hidden 32, 2 layers, 64 positions) that train in a second or two.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const FIXTURES = resolve(import.meta.dirname, '../../../../test/fixtures/xlmr-tiny');
export const REPO = resolve(import.meta.dirname, '../../../..');

/** `count` lines; line i has 1 positive and 4 negatives, with teacher scores. */
export function toyLines(count: number): string[] {
  return Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      query: `질문 ${i}: 날씨 어때`,
      pos: [`답 ${i}: 오늘은 맑아요`],
      neg: Array.from({ length: 4 }, (_, j) => `다른 이야기 ${i}-${j}`),
      pos_scores: [2],
      neg_scores: [0.5, -0.5, -1, -1.5],
    }),
  );
}

/** A fresh folder with `train.jsonl` (`lines` lines) and `eval.jsonl` (the first 6). */
export function toyDataDir(prefix: string, lines = 24): string {
  const dir = mkdtempSync(join(tmpdir(), `kotune-${prefix}-`));
  mkdirSync(dir, { recursive: true });
  const all = toyLines(lines);
  writeFileSync(join(dir, 'train.jsonl'), `${all.join('\n')}\n`);
  writeFileSync(join(dir, 'eval.jsonl'), `${all.slice(0, 6).join('\n')}\n`);
  return dir;
}

/** Raw config keys of a tiny run in `dir` (paths relative to it); `task` picks the fixture model. */
export function tinyConfig(task: 'reranker' | 'embedder', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    task,
    model_name_or_path: join(FIXTURES, task),
    train_data: 'train.jsonl',
    output_dir: 'out',
    per_device_train_batch_size: 4,
    train_group_size: 3,
    query_max_len: 16,
    passage_max_len: 24,
    learning_rate: 1e-3,
    max_steps: 6,
    logging_steps: 1,
    save_steps: 3,
    backend: 'wasm',
    ...extra,
  };
}

/** Writes `config` as `name` in `dir` and returns its path. */
export function writeConfig(dir: string, name: string, config: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

/** `train` options that print nothing (no status lines, no progress). */
export const quiet = { print: () => {}, progressStream: { write: () => true, isTTY: false } as unknown as NodeJS.WritableStream };
