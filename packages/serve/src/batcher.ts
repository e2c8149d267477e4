/**
 * The request queue and dynamic batching. Every input of every request becomes one queue entry (TEI counts its
 * `max_concurrent_requests` permits per input too); entries of many requests are gathered into one round for the
 * worker, so concurrent clients share forward passes. A round holds entries of one kind (same model and same
 * options: its `key`), oldest first, until `maxBatchTokens` (TEI's `--max-batch-tokens`, counted as TEI does for
 * unpadded backends: the sum of the inputs' lengths) or `maxBatchRequests` would be passed; `Reranker.score` /
 * `Embedder.encode` then sort the round by length, longest first, and pad each forward pass only to its own
 * longest input.
 *
 * When the worker is idle a round waits at most `maxWaitMs` after its oldest entry arrived for company, unless it
 * is already full; while the worker is busy entries simply accumulate and the next round leaves the moment it is
 * free (TEI batches continuously, without a wait). The queue is bounded: a request whose inputs would take the
 * queued and computing inputs past `maxConcurrentRequests` is refused whole (503 with Retry-After). A request
 * whose client has gone (`AbortSignal`) loses its queued entries at once; entries already computing finish and
 * are dropped.
 */
import { overloaded } from './errors.ts';

export interface BatcherOptions {
  /** Inputs queued or computing, at most (TEI `--max-concurrent-requests`, default 512). */
  maxConcurrentRequests: number;
  /** Tokens in one round, at most (TEI `--max-batch-tokens`, default 16384); a single longer input goes alone. */
  maxBatchTokens: number;
  /** Inputs in one round, at most (TEI `--max-batch-requests`); null: bounded by tokens only. */
  maxBatchRequests: number | null;
  /** How long an idle worker waits for more inputs before it starts a round that is not full. */
  maxWaitMs: number;
}

/** Runs one round: the outputs of `inputs`, in order. All entries sharing a key share its runner. */
export type Runner<I, O> = (inputs: I[]) => Promise<O[]>;

export interface JobResult<O> {
  outputs: O[];
  /** From submission to the start of the job's first round. */
  queueMs: number;
  /** Time in the rounds that computed the job's inputs. */
  inferenceMs: number;
}

export interface BatcherStats {
  /** Inputs waiting for a round. */
  queued: number;
  /** Inputs in the round being computed. */
  computing: number;
  /** Rounds run so far, and the inputs and tokens they held. */
  rounds: number;
  roundInputs: number;
  roundTokens: number;
}

interface Job {
  outputs: unknown[];
  remaining: number;
  submittedAt: number;
  firstRoundAt: number | null;
  inferenceMs: number;
  settled: boolean;
  resolve: (result: JobResult<unknown>) => void;
  reject: (error: unknown) => void;
}

interface Entry {
  job: Job;
  index: number;
  key: string;
  run: Runner<unknown, unknown>;
  input: unknown;
  tokens: number;
}

export class Batcher {
  private readonly options: BatcherOptions;
  private queue: Entry[] = [];
  private queuedTokens = 0;
  private computing = 0;
  private computingTokens = 0;
  private busy = false;
  private timer: NodeJS.Timeout | null = null;
  private draining = false;
  private idleWaiters: (() => void)[] = [];
  /** Tokens per second of the recent rounds (exponential average), for Retry-After. */
  private tokensPerSecond = 0;
  private counts = { rounds: 0, roundInputs: 0, roundTokens: 0 };

  constructor(options: BatcherOptions) {
    this.options = options;
  }

  /**
   * Queues `inputs` (their token counts in `tokens`) to be run by `run` in rounds with every other entry of the
   * same `key`; resolves with the outputs in input order. Throws the 503 error at once when the queue is full.
   */
  submit<I, O>(key: string, run: Runner<I, O>, inputs: I[], tokens: number[], signal?: AbortSignal): Promise<JobResult<O>> {
    const active = this.queue.length + this.computing;
    if (active + inputs.length > this.options.maxConcurrentRequests) throw overloaded(this.retryAfterSeconds());
    return new Promise<JobResult<O>>((resolve, reject) => {
      const job: Job = {
        outputs: new Array(inputs.length),
        remaining: inputs.length,
        submittedAt: performance.now(),
        firstRoundAt: null,
        inferenceMs: 0,
        settled: false,
        resolve: resolve as Job['resolve'],
        reject,
      };
      if (inputs.length === 0) return this.settle(job);
      inputs.forEach((input, index) => {
        this.queue.push({ job, index, key, run: run as Runner<unknown, unknown>, input, tokens: tokens[index]! });
        this.queuedTokens += tokens[index]!;
      });
      signal?.addEventListener('abort', () => this.abandon(job, signal.reason), { once: true });
      this.schedule();
    });
  }

  stats(): BatcherStats {
    return { queued: this.queue.length, computing: this.computing, ...this.counts };
  }

  /** Starts every queued round without waiting for company; resolves when nothing is queued or computing. */
  drain(): Promise<void> {
    this.draining = true;
    this.schedule();
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private retryAfterSeconds(): number {
    const tokens = this.queuedTokens + this.computingTokens;
    return this.tokensPerSecond > 0 ? Math.max(1, Math.ceil(tokens / this.tokensPerSecond)) : 1;
  }

  private schedule(): void {
    if (this.busy) return;
    if (this.queue.length === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      return;
    }
    const { maxBatchTokens, maxBatchRequests, maxWaitMs } = this.options;
    const waited = performance.now() - this.queue[0]!.job.submittedAt;
    const full = this.queuedTokens >= maxBatchTokens || (maxBatchRequests !== null && this.queue.length >= maxBatchRequests);
    if (!full && !this.draining && waited < maxWaitMs) {
      this.timer ??= setTimeout(() => {
        this.timer = null;
        this.schedule();
      }, maxWaitMs - waited);
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    void this.runRound(this.takeRound());
  }

  /** The oldest entry and the entries of its key after it, within the round's token and input bounds. */
  private takeRound(): Entry[] {
    const { maxBatchTokens, maxBatchRequests } = this.options;
    const key = this.queue[0]!.key;
    const round: Entry[] = [];
    const rest: Entry[] = [];
    let tokens = 0;
    let closed = false;
    for (const entry of this.queue) {
      if (!closed && entry.key === key) {
        const over =
          round.length > 0 && (tokens + entry.tokens > maxBatchTokens || (maxBatchRequests !== null && round.length >= maxBatchRequests));
        if (!over) {
          round.push(entry);
          tokens += entry.tokens;
          continue;
        }
        closed = true;
      }
      rest.push(entry);
    }
    this.queue = rest;
    this.queuedTokens -= tokens;
    return round;
  }

  private async runRound(round: Entry[]): Promise<void> {
    this.busy = true;
    const tokens = round.reduce((sum, entry) => sum + entry.tokens, 0);
    this.computing = round.length;
    this.computingTokens = tokens;
    const started = performance.now();
    for (const { job } of round) job.firstRoundAt ??= started;
    try {
      const outputs = await round[0]!.run(round.map((entry) => entry.input));
      const elapsed = performance.now() - started;
      const jobs = new Set(round.map((entry) => entry.job));
      for (const job of jobs) job.inferenceMs += elapsed;
      round.forEach((entry, i) => {
        if (entry.job.settled) return;
        entry.job.outputs[entry.index] = outputs[i];
        entry.job.remaining--;
        if (entry.job.remaining === 0) this.settle(entry.job);
      });
      const rate = tokens / Math.max(elapsed / 1000, 1e-6);
      this.tokensPerSecond = this.tokensPerSecond === 0 ? rate : 0.8 * this.tokensPerSecond + 0.2 * rate;
    } catch (error) {
      for (const entry of round) this.abandon(entry.job, error);
    } finally {
      this.counts.rounds++;
      this.counts.roundInputs += round.length;
      this.counts.roundTokens += tokens;
      this.computing = 0;
      this.computingTokens = 0;
      this.busy = false;
      this.schedule();
    }
  }

  private settle(job: Job): void {
    job.settled = true;
    const firstRoundAt = job.firstRoundAt ?? job.submittedAt;
    job.resolve({ outputs: job.outputs, queueMs: firstRoundAt - job.submittedAt, inferenceMs: job.inferenceMs });
  }

  /** Fails `job` and drops its queued entries (a disconnected client, or a failed round). */
  private abandon(job: Job, reason: unknown): void {
    if (job.settled) return;
    job.settled = true;
    this.queue = this.queue.filter((entry) => {
      if (entry.job !== job) return true;
      this.queuedTokens -= entry.tokens;
      return false;
    });
    job.reject(reason);
    if (!this.busy) this.schedule();
  }
}
