/**
 * `pnpm test:install` (also part of `pnpm test`): kotune as a user gets it. Builds and packs every package (`pnpm -r pack`),
 * installs the tarballs with npm into a fresh folder outside the repository (third-party packages come from the
 * npm registry), and there runs `npx kotune --help`, `npx kotune score` on a fixture model, `kotune serve` on it, a
 * plain `node` ESM script that imports @kotune/xlm-roberta, the README's TypeScript example (typed by `tsc --noEmit`, strict,
 * Node's module settings, then run), and prints how long the install and the first score took.
 * `pnpm test` runs it with everything else (it needs the npm registry and takes a minute or two); uvu prints its totals.
 *
 * KOTUNE_INSTALL_CACHE=DIR: npm's cache folder (e.g. an empty one, to time a first install).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from '../../scripts/build.ts';
import { pnpmCommand } from '../support/pnpm.ts';
import { prepareReadmeExample, readmeTypeScript } from '../support/readme-example.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const packagesDir = join(root, 'packages');
const work = mkdtempSync(join(tmpdir(), 'kotune-install-'));
const tarballs = join(work, 'tarballs');
const user = join(work, 'user'); // the user's project: no pnpm, no workspace, no tsx
const TFJS_BANNER = /looks like you are running TensorFlow\.js in Node\.js/;
const PAIRS = [
  ['배고프다', '뭐라도 챙겨 드세요.'],
  ['배고프다', '좋은 꿈 꾸세요.'],
];
const timings: string[] = [];
/** `npx kotune score --normalize` on PAIRS (both pairs have the same query), for the server to match. */
let firstScores: number[] = [];

interface Run {
  code: number;
  out: string;
  err: string;
  seconds: number;
}

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  const started = Date.now();
  const { KOTUNE_BACKEND, KOTUNE_NATIVE, INIT_CWD, ...inherited } = process.env; // a user's defaults
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: { ...inherited, ...env }, maxBuffer: 64 << 20 }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out, err, seconds: (Date.now() - started) / 1000 });
    });
  });
}

function assertOk(result: Run, what: string): void {
  assert.is(result.code, 0, `${what} failed:\n${result.out}\n${result.err}`);
}

/** The native kernels ran (the addon was compiled at install) and tfjs's pure-JS default did not. */
function assertFastBackend(err: string, what: string): void {
  assert.not.match(err, TFJS_BANNER, what);
  assert.match(err, /^backend: wasm \(.*\); products: (OpenBLAS|built-in)/m, `${what}: ${err}`);
}

test('pnpm build and pnpm pack: a tarball per package, with versions and the build', async () => {
  build();
  const [pnpm, ...first] = pnpmCommand();
  assertOk(await run(pnpm, [...first, '-r', 'pack', '--pack-destination', tarballs], root), 'pnpm -r pack');
  const packages = readdirSync(packagesDir).filter((d) => existsSync(join(packagesDir, d, 'package.json')));
  const files = readdirSync(tarballs);
  assert.is(files.length, packages.length, files.join(', '));
  for (const file of files) {
    const listing = await run('tar', ['-xzOf', join(tarballs, file), 'package/package.json'], work);
    const pkg = JSON.parse(listing.out);
    assert.not.match(listing.out, /workspace:/, `${file}: workspace: ranges left`);
    for (const target of Object.values(pkg.exports) as { types: string; import: string }[]) {
      const contents = (await run('tar', ['-tzf', join(tarballs, file)], work)).out;
      for (const path of [target.types, target.import]) assert.ok(contents.includes(`package/${path.slice(2)}\n`), `${file} lacks ${path}`);
    }
  }
});

test('npm install of the tarballs in a fresh folder', async () => {
  mkdirSync(user);
  writeFileSync(join(user, 'package.json'), `${JSON.stringify({ name: 'kotune-user', private: true, type: 'module' }, null, 2)}\n`);
  const cache = process.env.KOTUNE_INSTALL_CACHE ? ['--cache', process.env.KOTUNE_INSTALL_CACHE] : [];
  const ours = readdirSync(tarballs).map((f) => join(tarballs, f));
  const install = await run('npm', ['install', '--no-audit', '--no-fund', ...cache, ...ours], user);
  assertOk(install, 'npm install');
  assert.not.match(install.err, /\n\s+at .*\(.*:\d+:\d+\)/, `a stack trace at install:\n${install.err}`);
  timings.push(
    `npm install of the ${ours.length} tarballs: ${install.seconds.toFixed(1)} s${cache.length ? ' (npm cache: KOTUNE_INSTALL_CACHE)' : ''}`,
  );
  assert.not.ok(existsSync(join(user, 'node_modules/@tensorflow/tfjs-node')), 'tfjs-node is not installed');
  assert.not.ok(existsSync(join(user, 'node_modules/@tensorflow/tfjs-node-gpu')), 'tfjs-node-gpu is not installed');
  // The tools of the TypeScript consumer, not timed: a TypeScript user has them already.
  assertOk(
    await run('npm', ['install', '--no-audit', '--no-fund', '--no-save', ...cache, 'typescript@5.9', '@types/node@20'], user),
    'npm install typescript',
  );
});

test('npx kotune --help, and kotune score on a fixture model: the first score', async () => {
  const help = await run('npx', ['--no-install', 'kotune', '--help'], user);
  assertOk(help, 'npx kotune --help');
  assert.match(help.out, /^usage: kotune <command>/);
  assert.match(help.out, /^  score /m);
  const demo = await run('npx', ['--no-install', 'kotune', 'demo'], user);
  assert.is(demo.code, 2, 'kotune demo outside a clone: a usage error');
  assert.match(demo.err, /^kotune: demo: runs in a clone of the kotune repository/);

  cpSync(join(root, 'test/fixtures/xlmr-tiny/reranker'), join(user, 'models/reranker'), { recursive: true });
  writeFileSync(join(user, 'pairs.jsonl'), PAIRS.map(([query, passage]) => JSON.stringify({ query, passage })).join('\n') + '\n');
  const score = await run(
    'npx',
    ['--no-install', 'kotune', 'score', '--model', 'models/reranker', '--input', 'pairs.jsonl', '--normalize'],
    user,
  );
  assertOk(score, 'npx kotune score');
  assertFastBackend(score.err, 'kotune score');
  const scores = score.out
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line).score as number);
  firstScores = scores;
  assert.is(scores.length, 2);
  for (const s of scores) assert.ok(s > 0 && s < 1, String(s));
  timings.push(`first score (npx kotune score, 2 pairs, start-up and model load included): ${score.seconds.toFixed(1)} s`);

  // The same numbers from the sources in the repository, on the default the commands above ran on: the tarballs
  // hold this code, built.
  const { initBackend } = await import('../../packages/engine/src/index.ts');
  const { Reranker } = await import('../../packages/xlm-roberta/src/index.ts');
  await initBackend({ backend: 'wasm', native: 'auto', log: null });
  const reranker = await Reranker.load(join(root, 'test/fixtures/xlmr-tiny/reranker'), { log: null });
  assert.equal(scores, await reranker.score(PAIRS as [string, string][], { normalize: true }));
  reranker.dispose();
});

test('kotune serve from the tarballs (its inference worker built to .js): /rerank gives what kotune score gave', async () => {
  const server = spawn(join(user, 'node_modules/.bin/kotune'), ['serve', '--model', 'models/reranker', '--port', '0'], { cwd: user });
  const exited = new Promise<number | null>((resolve) => server.on('exit', resolve));
  let err = '';
  server.stderr.on('data', (data) => (err += data));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (data) => {
        out += data;
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+);/.exec(out);
        if (match) resolve(match[1]!);
      });
      void exited.then((code) => reject(new Error(`kotune serve exited ${code} before listening:\n${err}`)));
    });
    const response = await fetch(`${url}/rerank`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: PAIRS[0]![0], texts: PAIRS.map(([, passage]) => passage) }),
    });
    assert.is(response.status, 200);
    const ranks = (await response.json()) as { index: number; score: number }[];
    assert.equal(
      ranks.sort((a, b) => a.index - b.index).map((r) => r.score),
      firstScores,
    );
  } finally {
    server.kill('SIGTERM');
  }
  assert.is(await exited, 0, err);
  assertFastBackend(err, 'kotune serve');
});

test('a plain node ESM script imports @kotune/xlm-roberta and scores', async () => {
  writeFileSync(
    join(user, 'score.mjs'),
    [
      "import { Reranker } from '@kotune/xlm-roberta';",
      "const reranker = await Reranker.load('models/reranker');",
      "console.log(JSON.stringify(await reranker.score([['배고프다', '뭐라도 챙겨 드세요.']], { normalize: true })));",
    ].join('\n'),
  );
  const script = await run(process.execPath, ['score.mjs'], user);
  assertOk(script, 'node score.mjs');
  assertFastBackend(script.err, 'node score.mjs');
  assert.match(script.out, /^\[0\.\d+\]\n$/);
});

test("the README's example: tsc --noEmit (strict, Node's module settings), then run", async () => {
  const [code] = readmeTypeScript();
  const env = prepareReadmeExample(user, code!);
  writeFileSync(join(user, 'example.ts'), code!);
  writeFileSync(
    join(user, 'tsconfig.json'),
    `${JSON.stringify(
      {
        compilerOptions: { strict: true, module: 'nodenext', target: 'es2022', types: ['node'], skipLibCheck: true, outDir: 'built' },
        files: ['example.ts'],
      },
      null,
      2,
    )}\n`,
  );
  const tsc = join(user, 'node_modules/.bin/tsc');
  assertOk(await run(tsc, ['--noEmit', '-p', '.'], user), 'tsc --noEmit');
  // Our declarations themselves, checked too (skipLibCheck off): the only errors allowed are TensorFlow.js 4.22's own.
  const libCheck = await run(tsc, ['--noEmit', '-p', '.', '--skipLibCheck', 'false'], user);
  const ours = libCheck.out.split('\n').filter((line) => /error TS/.test(line) && !line.startsWith('node_modules/@tensorflow/'));
  assert.equal(ours, [], libCheck.out);
  assertOk(await run(tsc, ['-p', '.'], user), 'tsc');
  const example = await run(process.execPath, ['built/example.js'], user, env);
  assertOk(example, 'the README example');
  assertFastBackend(example.err, 'the README example');
  assert.match(example.out, /^\[ 0\.\d+ \] -?[01]\.\d+\n/);
  assert.match(example.err, /^done: 100 steps; model saved to .*runs\/my-run$/m);
});

test.after(() => {
  for (const line of timings) console.log(line);
  rmSync(work, { recursive: true, force: true });
});

test.run();
