/**
 * The real Python libraries as referee (issue 20; issue 16, item 6). One Python process (referee.py) saves
 * folders with sentence-transformers (its installed 6.x, and the 2.2.2 / 4.1.0 layouts file by file) and
 * transformers, and computes their outputs and those of the folders kotune writes here; this file checks:
 *
 *   - folders saved by the libraries load in kotune, and `Embedder.encode` / `kotune encode` and
 *     `Reranker.score` / `kotune score` equal `SentenceTransformer.encode`, transformers' logits and
 *     `CrossEncoder.predict`, default and named prompts included;
 *   - kotune's exports (a reranker, CLS and mean embedders with prompts) load in both libraries with equal
 *     outputs, an input at the model's maximum length included;
 *   - exports say a `model_max_length` the model can take: a 512-position model's 510 runs in transformers,
 *     while the 512 kotune used to write makes transformers fail on the same text.
 *
 * Tolerance: max|kotune − Python| / max|Python| ≤ 1e-5 over each output (README; measured errors are printed).
 * Runs where a Python with torch, transformers and sentence-transformers is found or can be made from a local
 * wheel mirror (python.ts); elsewhere every test is skipped, with the reason on a `skip:` line.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { run as encodeCommand } from '../../packages/cli/src/commands/encode.ts';
import { run as scoreCommand } from '../../packages/cli/src/commands/score.ts';
import { findReferee } from './python.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/xlmr-tiny/', import.meta.url));
const KO_EN_32K = fileURLToPath(new URL('../../packages/tokenizer/assets/ko-en-32k', import.meta.url));
const SCRIPT = fileURLToPath(new URL('referee.py', import.meta.url));
const TOLERANCE = 1e-5;

const cases = JSON.parse(readFileSync(join(FIXTURE, 'cases.json'), 'utf8'));
const singles: string[] = cases.tokenization.cases.find((c: { name: string }) => c.name === 'singles').inputs;
/** Korean, English, mixed, empty, emoji, full-width; the 132-token text five times over is the long input. */
const texts = singles;
const longText = Array.from({ length: 5 }, () => singles[6]).join(' ');
const pairs: [string, string][] = [
  [singles[0]!, singles[1]!],
  [singles[2]!, singles[3]!],
  [singles[3]!, ''],
  ['비', singles[5]!],
  ['질문', longText],
];

const NAMES = [
  'sentence-transformers 6 folders load in kotune: encode equals SentenceTransformer.encode (prompts, max length)',
  'sentence-transformers 2.2.2 and 4.1.0 layouts load in kotune with the same outputs',
  'transformers and CrossEncoder rerankers: kotune score equals their logits',
  'a bare transformers encoder loads as a CLS + normalise embedder',
  'kotune embedders (CLS, mean, prompts) load in sentence-transformers and transformers with equal outputs, at the maximum length too',
  'kotune rerankers load in transformers and CrossEncoder with equal logits, at the maximum length too',
  'exports: the model_max_length of a 512-position model runs in transformers; the 512 written before crashed it',
] as const;

type Rows = number[][];
interface StResult {
  max_seq_length: number;
  prompts: Record<string, string>;
  default_prompt_name: string | null;
  encode: Record<string, Rows>;
  long: { embedding: number[]; length: number };
}
interface PooledResult {
  embeddings: Rows;
  lengths: number[];
  model_max_length: number;
}
interface RerankerResult {
  logits: number[];
  cross_encoder: number[];
  lengths: number[];
  model_max_length: number;
}
type FolderResult = { path: string; kind: string; overlong_error?: string | null } & Partial<StResult> &
  Partial<PooledResult> &
  Partial<RerankerResult> & { transformers?: PooledResult };

const referee = await findReferee({}, (line) => console.log(line));
if ('reason' in referee) {
  console.log(`skip: ${referee.reason}`);
  for (const name of NAMES) test.skip(name);
} else {
  console.log(
    `python referee: ${Object.entries(referee.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  registerTests(referee.python);
}
test.run();

function maxRelativeError(actual: ArrayLike<number>[], expected: ArrayLike<number>[]): number {
  assert.is(actual.length, expected.length, 'as many outputs');
  let diff = 0;
  let scale = 0;
  expected.forEach((row, i) => {
    assert.is(actual[i]!.length, row.length, 'same width');
    for (let j = 0; j < row.length; j++) {
      diff = Math.max(diff, Math.abs(actual[i]![j]! - row[j]!));
      scale = Math.max(scale, Math.abs(row[j]!));
    }
  });
  return diff / scale;
}

const worst: Record<string, number> = {};
/** Asserts ≤ TOLERANCE and records the error for the summary line. */
function close(label: string, actual: ArrayLike<number>[], expected: ArrayLike<number>[]): void {
  const error = maxRelativeError(actual, expected);
  worst[label] = error;
  assert.ok(error <= TOLERANCE, `${label}: max rel error ${error.toExponential(2)} > ${TOLERANCE}`);
}

function registerTests(python: string): void {
  const work = mkdtempSync(join(tmpdir(), 'kotune-referee-'));
  let results: { versions: Record<string, string>; folders: Record<string, FolderResult>; kotune: Record<string, FolderResult> };
  const kotune: Record<string, { kind: string; path: string; pooling?: string; normalize?: boolean; overlong?: number }> = {};

  test.before(async () => {
    await initBackend({ backend: 'wasm', log: null });
    const save = async (name: string, model: Reranker | Embedder, extra: { overlong?: number } = {}) => {
      const path = join(work, 'kotune', name);
      await model.save(path);
      kotune[name] =
        model instanceof Embedder
          ? { kind: 'embedder', path, pooling: model.pooling, normalize: model.normalize, ...extra }
          : { kind: 'reranker', path, ...extra };
      model.dispose();
    };
    await save('reranker', await Reranker.load(join(FIXTURE, 'reranker'), { log: null }));
    await save(
      'cls-prompts',
      await Embedder.load(join(FIXTURE, 'embedder'), { log: null, prompts: { query: 'query: ', document: 'passage: ' } }),
    );
    await save(
      'mean-default-prompt',
      await Embedder.load(join(FIXTURE, 'embedder'), {
        log: null,
        pooling: 'mean',
        normalize: false,
        maxSeqLength: 48,
        prompts: { query: 'query: ', document: '' },
        defaultPromptName: 'query',
      }),
    );
    // Random-init models with the shipped tokenizer (model_max_length 512) and 512 positions: 510 tokens fit.
    const config = { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 4, intermediate_size: 64, max_position_embeddings: 512 };
    await save('embedder-512', Embedder.random(config, KO_EN_32K, 3, { pooling: 'mean' }), { overlong: 512 });
    await save('reranker-512', Reranker.random(config, KO_EN_32K, 4), { overlong: 512 });

    const spec = join(work, 'spec.json');
    const output = join(work, 'results.json');
    writeFileSync(
      spec,
      JSON.stringify({
        out: join(work, 'python'),
        fixture_embedder: join(FIXTURE, 'embedder'),
        fixture_reranker: join(FIXTURE, 'reranker'),
        texts,
        long_text: longText,
        pairs,
        kotune,
      }),
    );
    const started = performance.now();
    const r = spawnSync(python, [SCRIPT, spec, output], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
      maxBuffer: 1 << 26,
    });
    if (r.status !== 0) throw new Error(`referee.py failed (status ${r.status}):\n${r.stderr.split('\n').slice(-15).join('\n')}`);
    console.log(`  referee.py: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    results = JSON.parse(readFileSync(output, 'utf8'));
  });
  test.after(() => {
    // The worst error per folder, for the record (the README quotes them).
    const byFolder = new Map<string, number>();
    for (const [label, error] of Object.entries(worst)) {
      const folder = label.replace(/ (encode|score|kotune|vs)\b.*$/, '');
      byFolder.set(folder, Math.max(byFolder.get(folder) ?? 0, error));
    }
    for (const [folder, error] of byFolder) console.log(`  ${folder}: max rel error ${error.toExponential(2)}`);
    console.log(`  worst of ${Object.keys(worst).length} comparisons: ${Math.max(...byFolder.values(), 0).toExponential(2)}`);
    rmSync(work, { recursive: true, force: true });
  });

  /** Loads a sentence-transformers folder in kotune and checks every output Python gave against it. */
  async function checkEmbedderFolder(name: string, st: FolderResult): Promise<void> {
    const embedder = await Embedder.load(st.path, { log: null });
    assert.is(embedder.maxSeqLength, st.max_seq_length, `${name}: max length`);
    // sentence-transformers fills in empty `query` / `document` prompts where a folder has none: the same thing.
    const given = (prompts: Record<string, string>) => Object.fromEntries(Object.entries(prompts).filter(([, text]) => text !== ''));
    assert.equal(given(embedder.prompts), given(st.prompts!), `${name}: prompts`);
    assert.is(embedder.defaultPromptName, st.default_prompt_name, `${name}: default prompt`);
    for (const [variant, expected] of Object.entries(st.encode!)) {
      const options = variant === 'default' ? {} : variant === 'none' ? { prefix: '' } : { promptName: variant.slice('prompt:'.length) };
      close(`${name} encode ${variant}`, await embedder.encode(texts, options), expected);
    }
    const prompt = embedder.defaultPromptName === null ? '' : embedder.prompts[embedder.defaultPromptName]!;
    const { inputIds } = embedder.tokenizer.encodeBatch([prompt + longText], { maxLength: embedder.maxSeqLength, padding: false });
    assert.is(inputIds[0]!.length, st.long!.length, `${name}: the long text is cut where sentence-transformers cuts it`);
    assert.is(st.long!.length, st.max_seq_length, `${name}: the long text fills the max length`);
    close(`${name} encode long`, await embedder.encode([longText]), [st.long!.embedding]);
    embedder.dispose();

    // The command: one {"embedding"} line per text, the folder's default prompt applied.
    const input = join(work, 'texts.jsonl');
    writeFileSync(input, texts.map((text) => JSON.stringify({ text })).join('\n'));
    const output = join(work, `${name}.embeddings.jsonl`);
    await encodeCommand(['--model', st.path, '--input', input, '--output', output]);
    const lines = readFileSync(output, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).embedding as number[]);
    close(`${name} kotune encode`, lines, st.encode!.default!);
  }

  async function checkRerankerFolder(name: string, folder: FolderResult): Promise<void> {
    const reranker = await Reranker.load(folder.path, { log: null });
    const scores = await reranker.score(pairs);
    close(`${name} score vs transformers`, [scores], [folder.logits!]);
    close(`${name} score vs CrossEncoder`, [scores], [folder.cross_encoder!]);
    const lengths = reranker.tokenizer
      .encodeRerankerPairs(pairs, { maxLength: reranker.model.roberta.maxSequenceLength, padding: false })
      .inputIds.map((ids) => ids.length);
    assert.equal(lengths, folder.lengths, `${name}: the same pair lengths (the last one the maximum, ${folder.model_max_length})`);
    reranker.dispose();
    const input = join(work, 'pairs.jsonl');
    writeFileSync(input, pairs.map(([query, passage]) => JSON.stringify({ query, passage })).join('\n'));
    const output = join(work, `${name}.scores.jsonl`);
    await scoreCommand(['--model', folder.path, '--input', input, '--output', output]);
    const lines = readFileSync(output, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).score as number);
    close(`${name} kotune score`, [lines], [folder.logits!]);
  }

  test(NAMES[0], async () => {
    await checkEmbedderFolder('st6-cls-prompts', results.folders['st6-cls-prompts']!);
    await checkEmbedderFolder('st6-mean-48', results.folders['st6-mean-48']!);
    const manifest = JSON.parse(readFileSync(join(results.folders['st6-cls-prompts']!.path, 'modules.json'), 'utf8'));
    assert.is(manifest[0].type, 'sentence_transformers.base.modules.transformer.Transformer', 'the v6 layout was tested');
  });

  test(NAMES[1], async () => {
    await checkEmbedderFolder('st2-mean-40', results.folders['st2-mean-40']!);
    await checkEmbedderFolder('st4-cls-prompts', results.folders['st4-cls-prompts']!);
  });

  test(NAMES[2], async () => {
    await checkRerankerFolder('hf-reranker', results.folders['hf-reranker']!);
    await checkRerankerFolder('st6-cross-encoder', results.folders['st6-cross-encoder']!);
  });

  test(NAMES[3], async () => {
    const folder = results.folders['hf-encoder']!;
    const embedder = await Embedder.load(folder.path, { log: null });
    assert.equal([embedder.pooling, embedder.normalize, embedder.maxSeqLength], ['cls', true, folder.model_max_length]);
    close('hf-encoder encode', await embedder.encode([...texts, longText]), folder.embeddings!);
    embedder.dispose();
  });

  test(NAMES[4], async () => {
    for (const name of ['cls-prompts', 'mean-default-prompt', 'embedder-512']) {
      const folder = results.kotune[name]!;
      await checkEmbedderFolder(`kotune ${name}`, folder);
      // transformers alone, truncating at the exported model_max_length: the same vectors, the long one included.
      const embedder = await Embedder.load(folder.path, { log: null });
      const ours = await embedder.encode([...texts, longText], { prefix: '', maxLength: folder.transformers!.model_max_length });
      close(`kotune ${name} vs transformers`, ours, folder.transformers!.embeddings);
      assert.is(
        Math.max(...folder.transformers!.lengths),
        embedder.model.maxSequenceLength,
        `${name}: transformers fed the longest input the model takes`,
      );
      embedder.dispose();
    }
  });

  test(NAMES[5], async () => {
    for (const name of ['reranker', 'reranker-512']) await checkRerankerFolder(`kotune ${name}`, results.kotune[name]!);
  });

  test(NAMES[6], async () => {
    for (const name of ['embedder-512', 'reranker-512']) {
      const folder = results.kotune[name]!;
      const tokenizerConfig = JSON.parse(readFileSync(join(folder.path, 'tokenizer_config.json'), 'utf8'));
      assert.is(tokenizerConfig.model_max_length, 510, `${name}: 512 positions - pad_token_id 1 - 1`);
      assert.is(folder.kind === 'embedder' ? folder.transformers!.model_max_length : folder.model_max_length, 510);
      assert.match(
        String(folder.overlong_error),
        /index out of range|index 512 is out of bounds/,
        `${name}: a 512-token input crashes transformers (${folder.overlong_error})`,
      );
    }
    assert.is(
      JSON.parse(readFileSync(join(results.kotune['embedder-512']!.path, 'sentence_bert_config.json'), 'utf8')).max_seq_length,
      510,
    );
    assert.is(results.kotune['embedder-512']!.max_seq_length, 510, 'sentence-transformers reads 510');
  });
}
