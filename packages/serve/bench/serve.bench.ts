/**
 * `pnpm bench serve`: `kotune serve` under a real HTTP load generator (autocannon) on 127.0.0.1, against the
 * e5-small-like reranker and embedder (12 layers, hidden 384, FFN 1536, the fixture's 32k vocabulary; random
 * init, saved as folders), next to the library calls `kotune score` / `kotune encode` make on the same inputs.
 *
 *   rerank   POST /rerank, 1 Korean query + 8 passages of 2-6 KorSTS sentences (about 20-110 tokens a pair)
 *   embed    POST /embed, 1 query-length Korean text (about 8-25 tokens): the query side of a RAG request
 *
 * For each: the requests sent one at a time by a plain client loop, then autocannon with 1, 8 and 32 concurrent
 * connections (a fixed number of requests each, so no request is cut off at the end): requests/s, passages/s,
 * p50 / p99 latency, and the mean inputs per batch round the server ran (from its /metrics). The last column is
 * passages/s over those of `Reranker.score` / `Embedder.encode` on all the run's inputs at once in this process
 * (batch size 32, the CLI's default; best of 3): the cost of HTTP, queueing and batching. The server is the CLI with its
 * defaults (`kotune serve --model ... --port 0`), in its own process; the load generator runs in this one.
 * Ends with one JSON line. Run it under the CPU lock: `flock /tmp/kotune-cpu.lock pnpm bench serve`.
 *
 *   pnpm bench serve [--backend wasm] [--scale 0.5]   (--scale multiplies the number of requests of every run)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Rng } from '@kotune/data';
import { backendFromArgv, initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { E5_SMALL_LIKE, FIXTURE } from '../../../test/bench/training.ts';

const MAIN = fileURLToPath(new URL('../../cli/src/main.ts', import.meta.url));
const KORSTS = fileURLToPath(new URL('../../../examples/data/korsts-eval.jsonl', import.meta.url));
const PASSAGES_PER_RERANK = 8;
const CONCURRENCY = [1, 8, 32];

const argValue = (flag: string) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : undefined);
const backend = backendFromArgv() ?? process.env.KOTUNE_BACKEND ?? 'wasm';
const scale = Number(argValue('--scale') ?? 1);

interface Workload {
  name: 'rerank' | 'embed';
  path: string;
  bodies: string[];
  /** Inputs (passages or texts) per request. */
  perRequest: number;
  /** Requests per run: one at a time, and at each concurrency. */
  amounts: { serial: number; concurrent: Record<number, number> };
}

interface Row {
  workload: string;
  clients: string;
  requests: number;
  requests_per_s: number;
  passages_per_s: number;
  p50_ms: number;
  p99_ms: number;
  inputs_per_batch: number;
  errors: number;
  vs_library: number;
}

function makeWorkloads(): Workload[] {
  const records = readFileSync(KORSTS, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { query: string; pos: string[]; neg: string[] });
  const sentences = records.flatMap((r) => [...r.pos, ...r.neg]);
  const rng = new Rng(20250601);
  const passage = () => Array.from({ length: 2 + rng.int(5) }, () => sentences[rng.int(sentences.length)]).join(' ');
  const rerank = records
    .slice(0, 32)
    .map((r) => JSON.stringify({ query: r.query, texts: Array.from({ length: PASSAGES_PER_RERANK }, passage) }));
  const embed = records.slice(32, 32 + 256).map((r) => JSON.stringify({ inputs: r.query }));
  // At least 2 requests per client: autocannon needs one per connection.
  const n = (count: number, clients = 1) => Math.max(2 * clients, Math.round(count * scale));
  const amounts = (serial: number, per: Record<number, number>) => ({
    serial: n(serial),
    concurrent: Object.fromEntries(CONCURRENCY.map((c) => [c, n(per[c]!, c)])),
  });
  return [
    { name: 'rerank', path: '/rerank', bodies: rerank, perRequest: PASSAGES_PER_RERANK, amounts: amounts(16, { 1: 16, 8: 48, 32: 128 }) },
    { name: 'embed', path: '/embed', bodies: embed, perRequest: 1, amounts: amounts(128, { 1: 128, 8: 512, 32: 1024 }) },
  ];
}

/**
 * Passages per second of the library call on every input of the workload at once (what the CLI runs on a chunk),
 * the best of 3 runs: the ceiling the server is measured against.
 */
async function libraryRate(workload: Workload, folder: string): Promise<number> {
  const bodies = workload.bodies.map((b) => JSON.parse(b));
  const best = async (count: number, call: () => Promise<unknown>) => {
    let fastest = Infinity;
    for (let run = 0; run < 3; run++) {
      const start = performance.now();
      await call();
      fastest = Math.min(fastest, performance.now() - start);
    }
    return count / (fastest / 1000);
  };
  if (workload.name === 'rerank') {
    const reranker = await Reranker.load(folder, { log: null });
    const pairs = bodies.flatMap((b: { query: string; texts: string[] }) => b.texts.map((t) => [b.query, t] as [string, string]));
    await reranker.score(pairs.slice(0, 32), { normalize: true }); // warm-up
    const rate = await best(pairs.length, () => reranker.score(pairs, { normalize: true, batchSize: 32 }));
    reranker.dispose();
    return rate;
  }
  const embedder = await Embedder.load(folder, { log: null });
  const texts = bodies.map((b: { inputs: string }) => b.inputs);
  await embedder.encode(texts.slice(0, 32)); // warm-up
  const rate = await best(texts.length, () => embedder.encode(texts, { batchSize: 32 }));
  embedder.dispose();
  return rate;
}

async function metrics(url: string): Promise<{ rounds: number; inputs: number }> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)![1]);
  return { rounds: value('te_batch_next_size_count'), inputs: value('te_batch_next_size_sum') };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/** The requests one after another from a plain loop: each waits for the previous answer. */
async function serial(url: string, workload: Workload, amount: number) {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  for (let i = 0; i < amount; i++) {
    const sent = performance.now();
    const response = await fetch(url + workload.path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: workload.bodies[i % workload.bodies.length],
    });
    await response.arrayBuffer();
    if (response.status !== 200) errors++;
    latencies.push(performance.now() - sent);
  }
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

/** autocannon with `connections` clients, `amount` requests in all; each client starts at a different body. */
async function concurrent(url: string, workload: Workload, connections: number, amount: number) {
  let client = 0;
  const requests = workload.bodies.map((body) => ({
    method: 'POST' as const,
    path: workload.path,
    headers: { 'content-type': 'application/json' },
    body,
  }));
  const start = performance.now();
  const result = await autocannon({
    url,
    connections,
    amount,
    timeout: 600,
    requests,
    setupClient: (c: { setRequests: (r: typeof requests) => void }) => {
      const offset = (client++ * 7) % requests.length;
      c.setRequests([...requests.slice(offset), ...requests.slice(0, offset)]);
    },
  });
  const errors = result.errors + result.timeouts + result.non2xx;
  // Our own clock: autocannon's `duration` is counted in whole sampling ticks.
  return {
    seconds: (performance.now() - start) / 1000,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors,
    completed: result.requests.total,
  };
}

async function startServer(models: string[]): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'serve', ...models.flatMap((m) => ['--model', m]), '--port', '0', '--backend', backend],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (data) => {
      out += data;
      const match = /listening on (\S+);/.exec(out);
      if (match) resolve(match[1]!);
    });
    void exited.then((code) => reject(new Error(`kotune serve exited ${code} before listening`)));
  });
  return { url, stop: () => (child.kill('SIGTERM'), exited) };
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'kotune-bench-serve-'));
  // The machine's load before and after: other processes' work shows in every figure (the lock serialises ours).
  const loadBefore = loadavg()[0]!;
  try {
    const info = await initBackend({ backend, log: null });
    console.log(`building the e5-small-like reranker and embedder (random init) in ${work}...`);
    const folders = { rerank: join(work, 'reranker'), embed: join(work, 'embedder') };
    const reranker = Reranker.random(E5_SMALL_LIKE, FIXTURE, 1);
    await reranker.save(folders.rerank);
    reranker.dispose();
    const embedder = Embedder.random(E5_SMALL_LIKE, FIXTURE, 2);
    await embedder.save(folders.embed);
    embedder.dispose();

    const workloads = makeWorkloads();
    const library: Record<string, number> = {};
    for (const workload of workloads) {
      library[workload.name] = await libraryRate(workload, folders[workload.name]);
      console.log(
        `library (${workload.name === 'rerank' ? 'Reranker.score' : 'Embedder.encode'}, batch 32): ${library[workload.name]!.toFixed(1)} passages/s`,
      );
    }

    const server = await startServer([`rerank=${folders.rerank}`, `embed=${folders.embed}`]);
    const rows: Row[] = [];
    try {
      for (const workload of workloads) {
        await serial(server.url, workload, 4); // warm-up
        const runs: [string, () => Promise<{ seconds: number; p50: number; p99: number; errors: number; completed?: number }>, number][] = [
          ['one at a time', () => serial(server.url, workload, workload.amounts.serial), workload.amounts.serial],
          ...CONCURRENCY.map(
            (c) =>
              [`${c}`, () => concurrent(server.url, workload, c, workload.amounts.concurrent[c]!), workload.amounts.concurrent[c]!] as [
                string,
                () => Promise<{ seconds: number; p50: number; p99: number; errors: number; completed?: number }>,
                number,
              ],
          ),
        ];
        for (const [clients, run, amount] of runs) {
          const before = await metrics(server.url);
          const result = await run();
          const after = await metrics(server.url);
          const requests = result.completed ?? amount;
          const passagesPerSecond = (requests * workload.perRequest) / result.seconds;
          rows.push({
            workload: workload.name,
            clients,
            requests,
            requests_per_s: requests / result.seconds,
            passages_per_s: passagesPerSecond,
            p50_ms: result.p50,
            p99_ms: result.p99,
            inputs_per_batch: (after.inputs - before.inputs) / Math.max(1, after.rounds - before.rounds),
            errors: result.errors,
            vs_library: passagesPerSecond / library[workload.name]!,
          });
          console.log(
            `  ${workload.name}, ${clients} client(s): ${(requests / result.seconds).toFixed(2)} requests/s, ${passagesPerSecond.toFixed(1)} passages/s`,
          );
        }
      }
    } finally {
      const code = await server.stop();
      if (code !== 0) console.log(`kotune serve exited ${code} on SIGTERM`);
    }

    const loadAfter = loadavg()[0]!;
    console.log(
      `\n${info.description}; e5-small-like (12L/384H/12h/1536/32k); server: kotune serve defaults (max batch tokens 16384, wait 5 ms, batch size 32); load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after`,
    );
    console.log(
      '| workload | clients | requests | requests/s | passages/s | p50 ms | p99 ms | inputs per batch | errors | passages/s vs library |',
    );
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of rows) {
      console.log(
        `| ${r.workload} | ${r.clients} | ${r.requests} | ${r.requests_per_s.toFixed(2)} | ${r.passages_per_s.toFixed(1)} | ${r.p50_ms.toFixed(0)} | ${r.p99_ms.toFixed(0)} | ${r.inputs_per_batch.toFixed(1)} | ${r.errors} | ${r.vs_library.toFixed(2)} |`,
      );
    }
    for (const workload of workloads) {
      console.log(
        `library ${workload.name}: ${library[workload.name]!.toFixed(1)} passages/s (${workload.name === 'rerank' ? 'kotune score' : 'kotune encode'}'s call, all ${workload.bodies.length * workload.perRequest} inputs at once)`,
      );
    }
    console.log(
      JSON.stringify({ backend: info.description, load_average: [loadBefore, loadAfter], library_passages_per_s: library, rows }),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// The wasm backend's module rethrows uncaught errors with its whole minified source: report the message only.
await main().catch((error: unknown) => {
  console.error(`serve bench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
