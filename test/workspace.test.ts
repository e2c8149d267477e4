/**
 * The package conventions of CONTRIBUTING.md ("Packages"), as `pnpm lint` checks them: this repository's
 * packages follow them, and a package that breaks them is caught, each problem named.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkPackages } from '../scripts/check-packages.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

test('every package of the workspace follows the conventions and declares what it imports', () => {
  assert.equal(checkPackages(root), []);
});

test('a package that misses them is reported, one line per problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-workspace-'));
  const write = (path: string, content: unknown) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content));
  };
  try {
    write('package.json', { name: 'kotune-workspace', private: true, engines: { node: '>=20' }, devDependencies: { uvu: '^0.5.6' } });
    write('packages/kotune/package.json', {
      name: 'kotune',
      version: '0.2.0',
      description: 'all of it',
      type: 'module',
      engines: { node: '>=20' },
      files: ['dist'],
      exports: { '.': './src/index.ts' },
      publishConfig: { exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } } },
      dependencies: { '@kotune/serve': 'workspace:*' },
    });
    write('packages/kotune/src/index.ts', "export * from '@kotune/serve';\n");
    // A new package written as the others were before they were packed.
    write('packages/serve/package.json', {
      name: '@kotune/serve',
      version: '0.1.0',
      private: true,
      type: 'module',
      exports: { '.': './src/index.ts' },
      dependencies: { '@kotune/kotune-core': '^0.1.0', fastify: '5.0.0' },
      optionalDependencies: { '@tensorflow/tfjs-node-gpu': '4.22.0' },
    });
    write(
      'packages/serve/src/index.ts',
      [
        "import { readFileSync } from 'fs';",
        "import { tf } from '@tensorflow/tfjs';",
        "import { Reranker } from '@kotune/xlm-roberta';",
        "import { helper } from '../../kotune/src/index.ts';",
        'export { readFileSync, tf, Reranker, helper };',
      ].join('\n'),
    );
    write('packages/serve/test/serve.test.ts', "import { test } from 'uvu';\nimport { request } from 'undici';\n");

    const problems = checkPackages(dir);
    const expected = [
      'packages/serve/package.json: "version" must be "0.2.0"',
      'packages/serve/package.json: "private" must go',
      'packages/serve/package.json: "description" is missing',
      'packages/serve/package.json: "engines" must be {"node":">=20"}',
      'packages/serve/package.json: "files" must list "dist"',
      'packages/serve/package.json: "publishConfig.exports" must be {".":{"types":"./dist/index.d.ts","import":"./dist/index.js"}}',
      'packages/serve/package.json: optionalDependencies @tensorflow/tfjs-node-gpu: downloads libtensorflow at install',
      'packages/serve/src/index.ts: imports "fs"; write "node:fs"',
      'packages/serve/src/index.ts: imports @tensorflow/tfjs; only @kotune/engine imports TensorFlow.js',
      'packages/serve/src/index.ts: imports @tensorflow/tfjs, which packages/serve/package.json does not declare',
      'packages/serve/src/index.ts: imports @kotune/xlm-roberta, which packages/serve/package.json does not declare (add it to "dependencies")',
      "packages/serve/src/index.ts: imports ../../kotune/src/index.ts, outside its package's src/",
      'packages/serve/test/serve.test.ts: imports undici, which packages/serve/package.json does not declare (add it to "devDependencies")',
      'packages/serve/package.json: dependencies fastify: no file of src/ imports it',
    ];
    for (const start of expected)
      assert.ok(
        problems.some((p) => p.startsWith(start)),
        `expected a problem starting with: ${start}\ngot:\n${problems.join('\n')}`,
      );
    assert.not.ok(
      problems.some((p) => p.startsWith('packages/kotune/')),
      problems.join('\n'),
    );
    assert.not.ok(
      problems.some((p) => p.includes('uvu')),
      'the workspace devDependencies serve the tests',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
