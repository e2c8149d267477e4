import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadStateDict } from '@kotune/weights';
import { hubCacheDir, isRepoId, resolveModelPath } from '../src/index.ts';
import { startFakeHub } from './fake-hub.ts';

const root = new URL('../../../', import.meta.url).pathname;
const reranker = join(root, 'test/fixtures/xlmr-tiny/reranker');
const embedder = join(root, 'test/fixtures/xlmr-tiny/embedder');
const weightFixtures = join(root, 'packages/weights/test/fixtures');
const read = (path: string) => readFileSync(path);

const hub = await startFakeHub({
  'kotune-test/reranker': {
    files: {
      'config.json': read(join(reranker, 'config.json')),
      'model.safetensors': read(join(reranker, 'model.safetensors')),
      'tokenizer.json': read(join(reranker, 'tokenizer.json')),
      'tokenizer_config.json': read(join(reranker, 'tokenizer_config.json')),
      'special_tokens_map.json': read(join(reranker, 'special_tokens_map.json')),
      // Not needed: must not be downloaded.
      'pytorch_model.bin': read(join(weightFixtures, 'module/pytorch_model.bin')),
      'onnx/model.onnx': 'not a model',
      'README.md': '# reranker',
    },
  },
  'kotune-test/embedder': {
    files: {
      ...Object.fromEntries(
        [
          'config.json',
          'model.safetensors',
          'tokenizer.json',
          'tokenizer_config.json',
          'modules.json',
          'config_sentence_transformers.json',
          'sentence_bert_config.json',
          '1_Pooling/config.json',
        ].map((f) => [f, read(join(embedder, f))]),
      ),
      // 2_Normalize has no files, so the hub has no such folder.
    },
  },
  'kotune-test/sharded-bin': {
    files: {
      'config.json': '{}',
      'tokenizer.json': '{}',
      ...Object.fromEntries(
        ['pytorch_model.bin.index.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin'].map((f) => [
          f,
          read(join(weightFixtures, 'module-sharded', f)),
        ]),
      ),
    },
  },
  'kotune-test/private': {
    token: 'hf_secret',
    files: {
      'config.json': '{}',
      'tokenizer.json': '{}',
      'model.safetensors': read(join(weightFixtures, 'mixed-safetensors/model.safetensors')),
    },
  },
  'kotune-test/corrupt': {
    corrupt: ['model.safetensors'],
    files: {
      'config.json': '{}',
      'tokenizer.json': '{}',
      'model.safetensors': read(join(weightFixtures, 'mixed-safetensors/model.safetensors')),
    },
  },
});

const quiet = { log: null } as const;
const newCache = () => mkdtemp(join(tmpdir(), 'kotune-hub-'));

async function rejectsWith(promise: Promise<unknown>, ...parts: string[]) {
  try {
    await promise;
  } catch (err) {
    for (const part of parts) assert.ok((err as Error).message.includes(part), `"${(err as Error).message}" should contain "${part}"`);
    return;
  }
  assert.unreachable('expected an error');
}

test('a local folder is returned as is; files and non-ids are refused', async () => {
  assert.is(await resolveModelPath(reranker, { offline: true }), reranker);
  await rejectsWith(resolveModelPath(join(reranker, 'config.json')), 'config.json', 'is a file');
  await rejectsWith(resolveModelPath('./no/such/folder/here'), './no/such/folder/here', 'no such folder');
  assert.ok(isRepoId('BAAI/bge-reranker-v2-m3') && isRepoId('xlm-roberta-base'));
  assert.not.ok(isRepoId('a/b/c') || isRepoId('org--x/y') || isRepoId('../x') || isRepoId('org/.hidden'));
});

test('cache dir: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub', () => {
  assert.is(hubCacheDir({ HF_HUB_CACHE: '/a', HF_HOME: '/b' }), '/a');
  assert.is(hubCacheDir({ HF_HOME: '/b', XDG_CACHE_HOME: '/c' }), '/b/hub');
  assert.is(hubCacheDir({ XDG_CACHE_HOME: '/c' }), '/c/huggingface/hub');
  assert.ok(hubCacheDir({}).endsWith('/.cache/huggingface/hub'));
});

/** A cache laid out the way Python's huggingface_hub leaves it (refs, blobs, relative snapshot symlinks). */
async function pythonStyleCache(cache: string, repoId: string, commit: string, withWeights = true) {
  const storage = join(cache, `models--${repoId.replace('/', '--')}`);
  await mkdir(join(storage, 'refs'), { recursive: true });
  await mkdir(join(storage, 'blobs'));
  await mkdir(join(storage, 'snapshots', commit), { recursive: true });
  await writeFile(join(storage, 'refs', 'main'), commit);
  const files = ['config.json', 'tokenizer.json', ...(withWeights ? ['model.safetensors'] : [])];
  for (const [i, file] of files.entries()) {
    await writeFile(join(storage, 'blobs', `blob${i}`), await readFile(join(reranker, file)));
    await symlink(`../../blobs/blob${i}`, join(storage, 'snapshots', commit, file));
  }
  return join(storage, 'snapshots', commit);
}

test('a model Python downloaded is found offline through HF_HUB_CACHE / HF_HOME and refs/main', async () => {
  const cache = await newCache();
  const commit = 'a'.repeat(40);
  const snapshot = await pythonStyleCache(cache, 'org/model', commit);
  const saved = { ...process.env };
  try {
    process.env.HF_HUB_OFFLINE = '1';
    process.env.HF_HUB_CACHE = cache;
    assert.is(await resolveModelPath('org/model'), snapshot);
    delete process.env.HF_HUB_CACHE;
    await rejectsWith(resolveModelPath('org/model', { cacheDir: join(cache, 'elsewhere') }), 'org/model', join(cache, 'elsewhere'));
    const home = await newCache();
    await pythonStyleCache(join(home, 'hub'), 'org/model', commit);
    process.env.HF_HOME = home;
    assert.is(await resolveModelPath('org/model'), join(home, 'hub/models--org--model/snapshots', commit));
    assert.is(await resolveModelPath('org/model', { revision: commit, cacheDir: cache }), snapshot);
  } finally {
    process.env = saved;
  }
});

test('offline and not (completely) cached: the error names the repo, the cache and what to do', async () => {
  const cache = await newCache();
  await rejectsWith(
    resolveModelPath('org/absent', { cacheDir: cache, offline: true }),
    'org/absent',
    cache,
    'does not exist',
    'offline',
    'huggingface-cli download org/absent',
    'HF_HUB_CACHE',
  );
  await pythonStyleCache(cache, 'org/partial', 'b'.repeat(40), false);
  await rejectsWith(resolveModelPath('org/partial', { cacheDir: cache, offline: true }), 'org/partial', 'lacks weights');
  await rejectsWith(resolveModelPath('org/partial', { cacheDir: cache, offline: true, revision: 'v2' }), 'has no refs/v2');
});

test('download: only the files a model needs, into blobs + snapshot symlinks + refs/main', async () => {
  const cache = await newCache();
  const before = hub.requests.length;
  const sha = hub.sha('kotune-test/reranker');
  const path = await resolveModelPath('kotune-test/reranker', { cacheDir: cache, hubUrl: hub.url, ...quiet });
  const storage = join(cache, 'models--kotune-test--reranker');
  assert.is(path, join(storage, 'snapshots', sha));
  assert.is(readFileSync(join(storage, 'refs/main'), 'utf8'), sha);
  assert.equal(readdirSync(path).sort(), [
    'config.json',
    'model.safetensors',
    'special_tokens_map.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  assert.ok(lstatSync(join(path, 'model.safetensors')).isSymbolicLink());
  assert.match(readlinkSync(join(path, 'model.safetensors')), /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
  assert.ok(read(join(path, 'model.safetensors')).equals(read(join(reranker, 'model.safetensors'))));
  assert.ok(!readdirSync(join(storage, 'blobs')).some((f) => f.includes('incomplete')));
  const fetched = hub.requests.slice(before).filter((r) => r.includes('/resolve/'));
  assert.not.ok(
    fetched.some((r) => /pytorch_model|onnx|README/.test(r)),
    fetched.join('\n'),
  );

  const after = hub.requests.length;
  assert.is(await resolveModelPath('kotune-test/reranker', { cacheDir: cache, hubUrl: hub.url, ...quiet }), path);
  assert.is(hub.requests.length, after, 'a complete cached snapshot needs no request');
});

test('download: sentence-transformers module folders, including one the hub has no files for', async () => {
  const cache = await newCache();
  const path = await resolveModelPath('kotune-test/embedder', { cacheDir: cache, hubUrl: hub.url, ...quiet });
  assert.ok(existsSync(join(path, '1_Pooling/config.json')));
  assert.ok(lstatSync(join(path, '2_Normalize')).isDirectory());
  assert.ok(existsSync(join(path, 'modules.json')) && existsSync(join(path, 'sentence_bert_config.json')));
});

test('download: a sharded pytorch_model.bin repo loads with @kotune/weights', async () => {
  const cache = await newCache();
  const path = await resolveModelPath('kotune-test/sharded-bin', { cacheDir: cache, hubUrl: hub.url, ...quiet });
  const tensors = await loadStateDict(path);
  assert.ok(tensors.has('embeddings.position_ids') && tensors.has('dense.weight'));
});

test('private repos: refused without a token, downloaded with HF_TOKEN', async () => {
  const cache = await newCache();
  const saved = process.env.HF_TOKEN;
  try {
    delete process.env.HF_TOKEN;
    await rejectsWith(
      resolveModelPath('kotune-test/private', { cacheDir: cache, hubUrl: hub.url, ...quiet }),
      'kotune-test/private',
      '401',
      'HF_TOKEN',
    );
    process.env.HF_TOKEN = 'hf_secret';
    const path = await resolveModelPath('kotune-test/private', { cacheDir: cache, hubUrl: hub.url, ...quiet });
    assert.ok(existsSync(join(path, 'model.safetensors')));
  } finally {
    if (saved === undefined) delete process.env.HF_TOKEN;
    else process.env.HF_TOKEN = saved;
  }
});

test('a download that does not match the hub checksum leaves nothing in the cache', async () => {
  const cache = await newCache();
  await rejectsWith(
    resolveModelPath('kotune-test/corrupt', { cacheDir: cache, hubUrl: hub.url, ...quiet }),
    'model.safetensors',
    'sha256',
    'corrupted',
  );
  const storage = join(cache, 'models--kotune-test--corrupt');
  assert.not.ok(
    readdirSync(join(storage, 'blobs')).some((f) => f.length === 64 || f.includes('incomplete')),
    'no blob for the bad file',
  );
  assert.not.ok(existsSync(join(storage, 'snapshots', hub.sha('kotune-test/corrupt'), 'model.safetensors')));
});

test('unknown repo or revision, and an unreachable hub, give clear errors', async () => {
  const cache = await newCache();
  await rejectsWith(resolveModelPath('kotune-test/nope', { cacheDir: cache, hubUrl: hub.url, ...quiet }), 'kotune-test/nope', '401');
  await rejectsWith(
    resolveModelPath('kotune-test/reranker', { cacheDir: cache, hubUrl: hub.url, revision: 'v9', ...quiet }),
    '404',
    'revision "v9"',
  );
  await rejectsWith(
    resolveModelPath('kotune-test/reranker', { cacheDir: cache, hubUrl: 'http://127.0.0.1:9', ...quiet }),
    'cannot reach the hub',
    cache,
  );
});

test.after(() => hub.close());
test.run();
