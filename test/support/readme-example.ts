/**
 * The README's TypeScript example, to run exactly as printed (test/readme.test.ts in the repository,
 * test/install/pack-install.ts from the tarballs): its ```ts blocks, and a folder where they run offline — a
 * Hugging Face cache that holds the fixture models (test/fixtures/xlmr-tiny) under the repo ids the example
 * loads, and the `my-run.json` it trains with, on a few lines of the shipped KorSTS data.
 * Not a test file itself: the runner only loads `*.test.ts`.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(root, 'test/fixtures/xlmr-tiny');

/** The code of every ```ts block of README.md, in order. */
export function readmeTypeScript(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  return [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** The repo ids `code` hands to `Reranker.load` and `Embedder.load`. */
function loadedIds(code: string, kind: 'Reranker' | 'Embedder'): string[] {
  return [...code.matchAll(new RegExp(`${kind}\\.load\\('([^']+)'`, 'g'))].map((m) => m[1]!);
}

/**
 * Fills `dir` for `code` and returns the environment it runs in (offline, the cache in `dir/hf-cache`). Each
 * repo id becomes a cache entry as huggingface_hub leaves it (`refs/main` -> `snapshots/<commit>/`);
 * `my-run.json` fine-tunes the first reranker id in `dir/runs/my-run`.
 */
export function prepareReadmeExample(dir: string, code: string): Record<string, string> {
  const cache = join(dir, 'hf-cache');
  const commit = 'c0ffee'.padEnd(40, '0');
  const rerankers = loadedIds(code, 'Reranker');
  const entries: [string, string][] = [
    ...rerankers.map((id) => [id, 'reranker'] as [string, string]),
    ...loadedIds(code, 'Embedder').map((id) => [id, 'embedder'] as [string, string]),
  ];
  for (const [id, fixture] of entries) {
    const storage = join(cache, `models--${id.split('/').join('--')}`);
    mkdirSync(join(storage, 'refs'), { recursive: true });
    writeFileSync(join(storage, 'refs', 'main'), commit);
    cpSync(join(fixtures, fixture), join(storage, 'snapshots', commit), { recursive: true });
  }
  if (code.includes("'my-run.json'")) {
    const lines = readFileSync(join(root, 'examples/data/korsts-train.jsonl'), 'utf8').split('\n').slice(0, 16);
    writeFileSync(join(dir, 'train.jsonl'), `${lines.join('\n')}\n`);
    writeFileSync(
      join(dir, 'my-run.json'),
      `${JSON.stringify(
        {
          task: 'reranker',
          model_name_or_path: rerankers[0],
          train_data: 'train.jsonl',
          output_dir: 'runs/my-run',
          train_group_size: 2,
          query_max_len: 16,
          passage_max_len: 32,
          per_device_train_batch_size: 4,
          learning_rate: 1e-4,
          logging_steps: 50,
          save_steps: 1000,
        },
        null,
        2,
      )}\n`,
    );
  }
  return { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
}
