import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, TrainSampler, rerankerPairs, type TrainBatch, type TrainSamplerOptions } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-sampler-'));
function file(name: string, records: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
}

/** 50 lines; line i has 2 positives and i % 6 negatives (so some have none, some too few). */
const records = Array.from({ length: 50 }, (_, i) => ({
  query: `q${i}`,
  pos: [`p${i}a`, `p${i}b`],
  neg: Array.from({ length: i % 6 }, (_, k) => `n${i}.${k}`),
}));
const data = file('data.jsonl', records);

async function epochBatches(sampler: TrainSampler): Promise<TrainBatch[]> {
  const out: TrainBatch[] = [];
  for await (const batch of sampler) out.push(batch);
  return out;
}
const base: TrainSamplerOptions = { kind: 'reranker', paths: [data], batchSize: 4, groupSize: 4, seed: 11, shuffleBufferSize: 16 };

test('same seed gives the same batches; another seed or epoch gives others', async () => {
  const a = await epochBatches(new TrainSampler(base));
  const b = await epochBatches(new TrainSampler(base));
  const c = await epochBatches(new TrainSampler({ ...base, seed: 12 }));
  assert.equal(a, b);
  assert.not.equal(
    a.map((x) => x.queries),
    c.map((x) => x.queries),
  );
  const twoEpochs = new TrainSampler(base);
  const first = await epochBatches(twoEpochs);
  const second = await epochBatches(twoEpochs);
  assert.is(second[0].epoch, 1);
  assert.not.equal(
    first.map((x) => x.queries),
    second.map((x) => x.queries),
  );
});

test('every line is used exactly once per epoch; shuffle: false keeps file order', async () => {
  const shuffled = (await epochBatches(new TrainSampler(base))).flatMap((b) => b.queries);
  assert.is(shuffled.length, 50);
  assert.is(new Set(shuffled).size, 50);
  assert.not.equal(
    shuffled,
    records.map((r) => r.query),
  );
  const ordered = (await epochBatches(new TrainSampler({ ...base, shuffle: false }))).flatMap((b) => b.queries);
  assert.equal(
    ordered,
    records.map((r) => r.query),
  );
});

test('groups as FlagEmbedding: positive first, negatives without replacement, repeated only when too few', async () => {
  const sampler = new TrainSampler({ ...base, groupSize: 5 });
  for (const batch of await epochBatches(sampler)) {
    assert.is(batch.passages.length, batch.queries.length * 5);
    batch.queries.forEach((query, q) => {
      const i = Number(query.slice(1));
      const group = batch.passages.slice(q * 5, q * 5 + 5);
      assert.ok(records[i].pos.includes(group[0]), `positive first in ${group}`);
      const negs = group.slice(1);
      const own = records[i].neg;
      if (own.length >= 4) {
        assert.is(new Set(negs).size, 4, `distinct negatives ${negs}`);
        assert.ok(negs.every((n) => own.includes(n)));
      } else if (own.length > 0) {
        // neg repeated ceil(4 / len) times, then 4 drawn without replacement.
        const copies = Math.ceil(4 / own.length);
        assert.ok(negs.every((n) => own.includes(n)));
        for (const n of own) assert.ok(negs.filter((x) => x === n).length <= copies);
      } else {
        // Borrowed from other lines: never one of this line's positives.
        assert.is(new Set(negs).size, 4);
        assert.ok(negs.every((n) => !records[i].pos.includes(n) && !n.startsWith(`n${i}.`)));
      }
    });
  }
});

test('rerankerPairs: (query, passage) grouped by query, positive first', () => {
  const batch: TrainBatch = { epoch: 0, index: 0, groupSize: 2, queries: ['a', 'b'], passages: ['a+', 'a-', 'b+', 'b-'], sources: [] };
  assert.equal(rerankerPairs(batch), [
    ['a', 'a+'],
    ['a', 'a-'],
    ['b', 'b+'],
    ['b', 'b-'],
  ]);
});

test('no_duplicates: a batch never holds the same text twice across its queries', async () => {
  // Many lines share answers (as chatbot data does): "a0".."a4" are everyone's passages.
  const shared = file(
    'shared.jsonl',
    Array.from({ length: 60 }, (_, i) => ({
      query: i % 10 === 0 ? 'same question' : `q${i}`,
      pos: [`a${i % 5}`],
      neg: [`a${(i + 1) % 5}`, `a${(i + 2) % 5}`, `x${i}`],
    })),
  );
  const options: TrainSamplerOptions = { kind: 'embedder', paths: [shared], batchSize: 4, groupSize: 2, seed: 3, shuffleBufferSize: 20 };
  const batches = await epochBatches(new TrainSampler(options));
  assert.is(batches.flatMap((b) => b.sources).length, 60, 'no line lost');
  for (const batch of batches) {
    const texts = [...batch.queries, ...batch.passages];
    assert.is(new Set(texts).size, texts.length, `duplicate in ${texts}`);
  }
  // Without it, the same data does put duplicates together.
  const plain = await epochBatches(new TrainSampler({ ...options, noDuplicates: false }));
  assert.ok(plain.some((b) => new Set([...b.queries, ...b.passages]).size < b.queries.length * 3));
});

test('dropLast drops the short last batch', async () => {
  const kept = await epochBatches(new TrainSampler({ ...base, batchSize: 8 }));
  const dropped = await epochBatches(new TrainSampler({ ...base, batchSize: 8, dropLast: true }));
  assert.equal(
    kept.map((b) => b.queries.length),
    [8, 8, 8, 8, 8, 8, 2],
  );
  assert.equal(
    dropped.map((b) => b.queries.length),
    [8, 8, 8, 8, 8, 8],
  );
  const epoch = await new TrainSampler({ ...base, batchSize: 8 }).countEpoch();
  assert.equal([epoch.batches, epoch.lines, epoch.badLines.count], [7, 50, 0]);
});

test('instructions as FlagEmbedding: per-line prompt replaces the instruction, only when one is set', async () => {
  const path = file('prompts.jsonl', [
    { query: 'q0', pos: ['p0'], neg: ['n0'], prompt: 'Special: ', query_prompt: 'RQ ', passage_prompt: 'RP ' },
    { query: 'q1', pos: ['p1'], neg: ['n1'] },
  ]);
  const opts = { paths: [path], batchSize: 2, groupSize: 2, shuffle: false } as const;
  const embed = (await new TrainSampler({ kind: 'embedder', ...opts, queryInstruction: 'Query: ', passageInstruction: 'Doc: ' }).next())!;
  assert.equal(embed.queries, ['Special: q0', 'Query: q1']);
  assert.equal(embed.passages, ['Doc: p0', 'Doc: n0', 'Doc: p1', 'Doc: n1']);
  const rerank = (await new TrainSampler({
    kind: 'reranker',
    ...opts,
    queryInstruction: 'A: ',
    passageInstruction: 'B: ',
    queryInstructionFormat: '<i>{}</i>{}',
  }).next())!;
  assert.equal(rerank.queries, ['<i>RQ </i>q0', '<i>A: </i>q1']);
  assert.equal(rerank.passages, ['RP p0', 'RP n0', 'B: p1', 'B: n1']);
  const none = (await new TrainSampler({ kind: 'embedder', ...opts }).next())!;
  assert.equal(none.queries, ['q0', 'q1']);
  assert.throws(() => new TrainSampler({ kind: 'embedder', ...opts, queryInstructionFormat: '{}' }), /exactly two "\{\}"/);
});

test('knowledge distillation: teacher scores follow the sampled passages', async () => {
  const path = file(
    'kd.jsonl',
    Array.from({ length: 10 }, (_, i) => ({
      query: `q${i}`,
      pos: [`p${i}`, `P${i}`],
      neg: [`n${i}a`, `n${i}b`, `n${i}c`],
      pos_scores: [i + 0.1, i + 0.2],
      neg_scores: [i + 0.3, i + 0.4, i + 0.5],
    })),
  );
  const score = (text: string) => {
    const i = Number(text.slice(1, -1).replace(/[^0-9]/g, '') || text.slice(1));
    const slot = text[0] === 'p' ? 0.1 : text[0] === 'P' ? 0.2 : { a: 0.3, b: 0.4, c: 0.5 }[text.at(-1)!]!;
    return i + slot;
  };
  const sampler = new TrainSampler({ kind: 'reranker', paths: [path], batchSize: 3, groupSize: 3, knowledgeDistillation: true });
  for await (const batch of sampler) {
    assert.is(batch.teacherScores!.length, batch.passages.length);
    batch.passages.forEach((p, k) => assert.is(batch.teacherScores![k], score(p)));
  }
  const missing = file('kd-missing.jsonl', [{ query: 'q', pos: ['p'], neg: ['n'] }]);
  try {
    await new TrainSampler({ kind: 'reranker', paths: [missing], batchSize: 1, groupSize: 2, knowledgeDistillation: true }).next();
    assert.unreachable();
  } catch (error) {
    assert.instance(error, DataError);
    assert.is(
      (error as Error).message,
      `${missing}:1: pos_scores and neg_scores (and a non-empty neg) are needed for knowledge distillation`,
    );
  }
});

test('a line with no negatives and nothing to borrow from is a clear error', async () => {
  const lonely = file('lonely.jsonl', [{ query: 'q', pos: ['p'], neg: [] }]);
  try {
    await new TrainSampler({ kind: 'reranker', paths: [lonely], batchSize: 1, groupSize: 3 }).next();
    assert.unreachable();
  } catch (error) {
    assert.is(
      (error as Error).message,
      `${lonely}:1: neg is empty and other lines offer only 0 distinct passages to use as its 2 negatives`,
    );
  }
});

test('skipBadLines: bad lines are counted once and the rest is batched', async () => {
  const path = join(dir, 'bad.jsonl');
  writeFileSync(
    path,
    ['{"query":"a","pos":["x"],"neg":["y"]}', '{oops', '{"query":"b","pos":[]}', '{"query":"c","pos":["z"],"neg":["w"]}'].join('\n'),
  );
  const sampler = new TrainSampler({ kind: 'reranker', paths: [path], batchSize: 8, groupSize: 2, skipBadLines: true });
  assert.is((await epochBatches(sampler)).flatMap((b) => b.queries).length, 2);
  await epochBatches(sampler);
  assert.is(sampler.badLines.count, 2);
  assert.equal([...sampler.badLines.byReason.keys()].sort(), ['empty pos', 'invalid JSON']);
  const epoch = await sampler.countEpoch();
  assert.equal([epoch.batches, epoch.lines, epoch.badLines.count], [1, 2, 2], 'countEpoch: one batch, two usable lines, two bad');
});

for (const kind of ['reranker', 'embedder'] as const) {
  test(`${kind}: a restored sampler continues with exactly the batches of an uninterrupted run`, async () => {
    const options: TrainSamplerOptions = { ...base, kind, batchSize: 3, shuffleBufferSize: 7 };
    const uninterrupted = new TrainSampler(options);
    const all: TrainBatch[] = [];
    for (let epoch = 0; epoch < 3; epoch++) all.push(...(await epochBatches(uninterrupted)));
    const perEpoch = all.filter((b) => b.epoch === 0).length;

    // Stop mid-epoch 1, and also right at an epoch boundary.
    for (const stopAfter of [5, perEpoch + 4, perEpoch]) {
      const first = new TrainSampler(options);
      const seen: TrainBatch[] = [];
      while (seen.length < stopAfter) {
        const batch = await first.next();
        if (batch) seen.push(batch);
      }
      if (stopAfter === perEpoch) assert.is(await first.next(), undefined);
      const saved = JSON.parse(JSON.stringify(first.state()));
      const resumed = new TrainSampler(options);
      await resumed.restore(saved);
      const rest: TrainBatch[] = [];
      for (let epoch = resumed.epoch; epoch < 3; epoch++) rest.push(...(await epochBatches(resumed)));
      assert.equal([...seen, ...rest], all);
    }
  });
}

test('restore refuses other settings or changed data', async () => {
  const sampler = new TrainSampler(base);
  for (let i = 0; i < 3; i++) await sampler.next();
  const state = sampler.state();
  try {
    await new TrainSampler({ ...base, batchSize: 5 }).restore(state);
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).message, 'cannot resume: sampler setting batchSize was 4 in the checkpoint, now 5');
  }
  // One query edited among the lines already read: same shapes, same draws, but the hash of the queries differs.
  const changed = file(
    'changed.jsonl',
    records.map((r, i) => (i === 1 ? { ...r, query: 'edited' } : r)),
  );
  try {
    await new TrainSampler({ ...base, paths: [changed] }).restore(state);
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /^cannot resume: the training data changed since the checkpoint/);
  }
});

test.run();
