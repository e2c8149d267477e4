#!/usr/bin/env node
/**
 * `kotune <command> [options]`: each command lives in `commands/<command>.ts` and exports
 * `run(argv)`, loaded on demand so that `kotune metrics` does not pay for TensorFlow.js start-up.
 */
import { fileURLToPath } from 'node:url';
import { describeFileError, wordFileErrors } from '@kotune/data';
import { CliError } from './errors.ts';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<void> }> }> = {
  demo: {
    summary: 'train the tiny Korean reranker on the shipped data and show before/after metrics',
    load: () => import('./commands/demo.ts'),
  },
  train: { summary: 'fine-tune a reranker or embedder from a JSON config', load: () => import('./commands/train.ts') },
  score: { summary: 'score {query, passage} JSONL lines with a reranker', load: () => import('./commands/score.ts') },
  encode: { summary: 'embed {text} JSONL lines with an embedder', load: () => import('./commands/encode.ts') },
  eval: { summary: 'evaluate rerankers or embedders (MRR, NDCG, recall/precision/F1@k)', load: () => import('./commands/eval.ts') },
  mine: { summary: 'mine hard negatives for {query, pos, neg} JSONL', load: () => import('./commands/mine.ts') },
  'score-data': { summary: 'add teacher pos_scores / neg_scores from a reranker', load: () => import('./commands/score-data.ts') },
  metrics: { summary: 'IR metrics of a TREC run against TREC qrels', load: () => import('./commands/metrics.ts') },
  serve: {
    summary: 'serve rerankers and embedders over HTTP (TEI, Cohere / Jina and OpenAI request formats)',
    load: () => import('./commands/serve.ts'),
  },
  export: { summary: 'write DIR/onnx/model.onnx for onnxruntime and transformers.js', load: () => import('./commands/export.ts') },
  doctor: {
    summary: 'what runs here: backend, native kernels and BLAS, threads, memory limits, what a GPU needs',
    load: () => import('./commands/doctor.ts'),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: kotune <command> [options]   (kotune <command> --help for its options)',
    '',
    ...lines,
    '',
    'Every command accepts --backend tensorflow-gpu|tensorflow|wasm|cpu (or KOTUNE_BACKEND).',
    'On wasm and cpu, KOTUNE_NATIVE=auto|openblas|blas|builtin|builtin-avx2|off picks the native kernels (see the README).',
  ].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return;
  }
  const command = COMMANDS[name];
  if (!command) throw new CliError(`unknown command '${name}'\n\n${usage()}`);
  const module = await command.load();
  await module.run(rest);
}

/**
 * The folder the command was typed in, when that is not the current one: `pnpm kotune …` and `pnpm demo` run
 * this file in the repository root wherever they are typed, and pnpm (as npm) passes that folder as INIT_CWD.
 */
function typedIn(): string | undefined {
  const { INIT_CWD, npm_package_json, npm_lifecycle_event } = process.env;
  const workspace = fileURLToPath(new URL('../../../package.json', import.meta.url));
  const ours = npm_package_json === workspace && (npm_lifecycle_event === 'kotune' || npm_lifecycle_event === 'demo');
  return ours && INIT_CWD ? INIT_CWD : undefined;
}

// Relative paths on the command line mean the user's folder.
const userFolder = typedIn();
if (userFolder) process.chdir(userFolder);

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof CliError) {
    console.error(`kotune: ${error.message}`);
    process.exit(2);
  }
  // A file-system error nobody put into words (`ENOENT: no such file ...`), thrown or quoted, still reads as a sentence.
  console.error(error instanceof Error ? `kotune: ${describeFileError(error) ?? wordFileErrors(error.message)}` : error);
  if (process.env.KOTUNE_DEBUG && error instanceof Error) console.error(error.stack);
  // A run stopped by a signal exits as the signal would have ended it (130, 143): its error carries the code.
  const exitCode = (error as { exitCode?: unknown } | null)?.exitCode;
  process.exit(typeof exitCode === 'number' ? exitCode : 1);
});
