import { DataError } from './errors.ts';
import { Rng, type RngState } from './rng.ts';
import { BadLineTally, readTrainExamples, type TrainExample } from './train-example.ts';

export interface TrainSamplerOptions {
  /** `reranker` reads `query_prompt` / `passage_prompt` per line, `embedder` reads `prompt`. */
  kind: 'reranker' | 'embedder';
  paths: readonly string[];
  /** Queries per batch. */
  batchSize: number;
  /** FlagEmbedding's `train_group_size`: one positive and `groupSize - 1` negatives per query. */
  groupSize: number;
  seed?: number;
  /** Default true; false keeps file order (files in the order given). */
  shuffle?: boolean;
  /** Lines held in the shuffle buffer (default 10000); a file shorter than this is shuffled completely. */
  shuffleBufferSize?: number;
  /**
   * sentence-transformers' `no_duplicates` batch sampler: a query whose texts (query, chosen positive or
   * negatives) already appear in the batch waits for a later batch, so that no in-batch negative is a
   * copy of a positive. Default: true for embedders, false for rerankers (their groups never meet).
   */
  noDuplicates?: boolean;
  /**
   * Drop incomplete batches (default false): the last of each epoch and, with `noDuplicates`, any batch
   * its look-ahead could not fill, as sentence-transformers drops them.
   */
  dropLast?: boolean;
  skipBadLines?: boolean;
  /** Require `pos_scores` / `neg_scores` on every line and return them as `teacherScores`. */
  knowledgeDistillation?: boolean;
  /** FlagEmbedding's `query_instruction_for_retrieval` / `query_instruction_for_rerank`. */
  queryInstruction?: string | null;
  /** Python-style format with two `{}`: instruction then text (default `{}{}`). */
  queryInstructionFormat?: string;
  passageInstruction?: string | null;
  passageInstructionFormat?: string;
  /** How many recently read lines lend passages to lines whose `neg` is empty (default 1024). */
  negativePoolSize?: number;
}

export interface TrainBatch {
  epoch: number;
  /** 0-based batch number within the epoch. */
  index: number;
  groupSize: number;
  /** One per query, instruction applied. */
  queries: string[];
  /** `queries.length * groupSize` texts: for query i, `passages[i*G]` is its positive, then its negatives. */
  passages: string[];
  /** Teacher scores aligned with `passages` (knowledge distillation only). */
  teacherScores?: number[];
  sources: { path: string; line: number }[];
}

/** What `TrainSampler.state()` returns: plain JSON, small (the buffer is rebuilt by replay). */
export interface TrainSamplerState {
  version: 1;
  settings: SamplingSettings;
  epoch: number;
  batchesInEpoch: number;
  /** Valid lines read from the files so far this epoch, checked after replay. */
  linesConsumed: number;
  /** Generator state at the save point, checked after replay. */
  rng: RngState;
  /** FNV-1a hash of the queries read so far this epoch, checked after replay. */
  dataHash: number;
}

type SamplingSettings = Pick<
  Required<TrainSamplerOptions>,
  'kind' | 'batchSize' | 'groupSize' | 'seed' | 'shuffle' | 'shuffleBufferSize' | 'noDuplicates' | 'dropLast' | 'negativePoolSize'
>;

interface Group {
  example: TrainExample;
  passages: string[];
  scores?: number[];
}

/** Pairs `(query, passage)` of a reranker batch, grouped by query, positive first (FlagEmbedding's layout). */
export function rerankerPairs(batch: TrainBatch): [string, string][] {
  return batch.passages.map((passage, i) => [batch.queries[Math.floor(i / batch.groupSize)], passage]);
}

/** Python `format` with exactly two `{}` fields (FlagEmbedding's `*_instruction_format`). */
export function applyFormat(format: string, instruction: string, text: string): string {
  const parts = format.split('{}');
  if (parts.length !== 3) throw new Error(`instruction format must contain exactly two "{}", got ${JSON.stringify(format)}`);
  return parts[0] + instruction + parts[1] + text + parts[2];
}

/**
 * Turns training files into batches the way FlagEmbedding builds them
 * (`AbsRerankerTrainDataset` / `AbsEmbedderTrainDataset.__getitem__`):
 *
 * - one positive chosen at random; `G-1` negatives sampled without replacement, from the line's `neg`
 *   repeated `ceil((G-1)/len(neg))` times when it holds fewer than `G-1`;
 * - where `neg` is empty (FlagEmbedding would fail with a division by zero), the negatives are passages
 *   (positives or negatives) of other lines among the last `negativePoolSize` read, never one equal to a
 *   positive of this line: random negatives, as sentence-transformers' in-batch negatives are;
 * - instructions: the query becomes `format(queryInstructionFormat, prompt ?? queryInstruction, query)`
 *   only when `queryInstruction` is set, as in FlagEmbedding (a per-line `prompt` alone changes nothing);
 *   likewise passages.
 *
 * The files are streamed, never loaded whole: lines pass through a shuffle buffer of
 * `shuffleBufferSize` lines (a uniformly random one leaves as each new one enters). Every epoch draws
 * from its own generator `Rng(seed, epoch)`, so its batches depend only on the seed, the epoch and the
 * data. `state()` records the position (epoch, batches given, lines read and a hash of their queries, generator state);
 * `restore()` replays the epoch from its start up to that point (reading the files again but building
 * no tensors) and checks that it arrived at the same lines read and generator state.
 */
export class TrainSampler {
  readonly settings: SamplingSettings;
  /** Lines skipped under `skipBadLines` during the first full pass over the data. */
  readonly badLines = new BadLineTally();
  private readonly options: TrainSamplerOptions;
  private readonly queryFormat: string;
  private readonly passageFormat: string;

  private epochNumber = 0;
  private batchesInEpoch = 0;
  private linesConsumed = 0;
  private dataHash = FNV_OFFSET;
  private rng: Rng;
  private reader: AsyncGenerator<TrainExample> | undefined;
  private readerDone = false;
  private countingBadLines = true;
  /** Shuffle buffer; in file order (a queue from `head`) when not shuffling. */
  private buffer: TrainExample[] = [];
  private head = 0;
  /** Ring of the last lines read, lending passages to lines without negatives. */
  private recent: TrainExample[] = [];
  private recentNext = 0;
  /** Groups set aside by `noDuplicates`, in arrival order. */
  private deferred: Group[] = [];

  constructor(options: TrainSamplerOptions) {
    this.options = options;
    this.settings = {
      kind: options.kind,
      batchSize: options.batchSize,
      groupSize: options.groupSize,
      seed: options.seed ?? 42,
      shuffle: options.shuffle ?? true,
      shuffleBufferSize: options.shuffleBufferSize ?? 10_000,
      noDuplicates: options.noDuplicates ?? options.kind === 'embedder',
      dropLast: options.dropLast ?? false,
      negativePoolSize: options.negativePoolSize ?? 1024,
    };
    const positive = (name: string, value: number) => {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
    };
    positive('batchSize', this.settings.batchSize);
    positive('groupSize', this.settings.groupSize);
    positive('shuffleBufferSize', this.settings.shuffleBufferSize);
    positive('negativePoolSize', this.settings.negativePoolSize);
    if (options.paths.length === 0) throw new Error('no training files given');
    this.queryFormat = options.queryInstructionFormat ?? '{}{}';
    this.passageFormat = options.passageInstructionFormat ?? '{}{}';
    applyFormat(this.queryFormat, '', '');
    applyFormat(this.passageFormat, '', '');
    this.rng = new Rng(this.settings.seed, 0);
  }

  get epoch(): number {
    return this.epochNumber;
  }

  /**
   * The next batch of the current epoch, or `undefined` once the epoch is over (the sampler then stands
   * at the start of the next epoch).
   */
  async next(): Promise<TrainBatch | undefined> {
    const groups = await this.nextGroups();
    if (groups === undefined) {
      this.startEpoch(this.epochNumber + 1);
      return undefined;
    }
    const batch = this.toBatch(groups);
    this.batchesInEpoch += 1;
    return batch;
  }

  /** The remaining batches of the current epoch. */
  async *[Symbol.asyncIterator](): AsyncGenerator<TrainBatch> {
    for (let batch = await this.next(); batch; batch = await this.next()) yield batch;
  }

  state(): TrainSamplerState {
    return {
      version: 1,
      settings: { ...this.settings },
      epoch: this.epochNumber,
      batchesInEpoch: this.batchesInEpoch,
      linesConsumed: this.linesConsumed,
      rng: this.rng.state(),
      dataHash: this.dataHash,
    };
  }

  /** Moves this sampler to a saved position; the batches that follow are those the saved run would have had. */
  async restore(state: TrainSamplerState): Promise<void> {
    if (state?.version !== 1) throw new Error(`unknown sampler state version ${JSON.stringify(state?.version)}`);
    for (const key of Object.keys(this.settings) as (keyof SamplingSettings)[]) {
      if (state.settings[key] !== this.settings[key]) {
        throw new Error(
          `cannot resume: sampler setting ${key} was ${JSON.stringify(state.settings[key])} in the checkpoint, ` +
            `now ${JSON.stringify(this.settings[key])}`,
        );
      }
    }
    this.startEpoch(state.epoch);
    for (let i = 0; i < state.batchesInEpoch; i++) {
      if ((await this.nextGroups()) === undefined) break;
      this.batchesInEpoch += 1;
    }
    const rngState = this.rng.state();
    if (
      this.batchesInEpoch !== state.batchesInEpoch ||
      this.linesConsumed !== state.linesConsumed ||
      this.dataHash !== state.dataHash ||
      rngState.some((word, i) => word !== state.rng[i])
    ) {
      throw new Error(
        `cannot resume: the training data changed since the checkpoint (epoch ${state.epoch}, batch ` +
          `${state.batchesInEpoch}: replay reached batch ${this.batchesInEpoch} after ${this.linesConsumed} lines, ` +
          `the checkpoint had read ${state.linesConsumed})`,
      );
    }
  }

  /**
   * What epoch `epoch` reads, in one pass over the data without tensors: its number of batches, of usable lines,
   * and the bad lines it skipped (under `skipBadLines`).
   */
  async countEpoch(epoch = 0): Promise<{ batches: number; lines: number; badLines: BadLineTally }> {
    const probe = new TrainSampler(this.options);
    probe.startEpoch(epoch);
    let batches = 0;
    while ((await probe.nextGroups()) !== undefined) batches += 1;
    return { batches, lines: probe.linesConsumed, badLines: probe.badLines };
  }

  private startEpoch(epoch: number): void {
    void this.reader?.return(undefined);
    if (this.readerDone) this.countingBadLines = false;
    this.epochNumber = epoch;
    this.batchesInEpoch = 0;
    this.linesConsumed = 0;
    this.dataHash = FNV_OFFSET;
    this.rng = new Rng(this.settings.seed, epoch);
    this.reader = undefined;
    this.readerDone = false;
    this.buffer = [];
    this.head = 0;
    this.recent = [];
    this.recentNext = 0;
    this.deferred = [];
  }

  private async readLine(): Promise<TrainExample | undefined> {
    if (this.readerDone) return undefined;
    this.reader ??= readTrainExamples(this.options.paths, {
      skipBadLines: this.options.skipBadLines,
      onBadLine: (error) => {
        if (this.countingBadLines) this.badLines.add(error);
      },
    });
    const { value, done } = await this.reader.next();
    if (done) {
      this.readerDone = true;
      return undefined;
    }
    this.linesConsumed += 1;
    this.dataHash = fnv1a(this.dataHash, value.query);
    if (this.recent.length < this.settings.negativePoolSize) this.recent.push(value);
    else this.recent[this.recentNext] = value;
    this.recentNext = (this.recentNext + 1) % this.settings.negativePoolSize;
    return value;
  }

  /** Next line out of the shuffle buffer, which is kept full while the files last. */
  private async nextExample(): Promise<TrainExample | undefined> {
    while (this.buffer.length - this.head < this.settings.shuffleBufferSize) {
      const example = await this.readLine();
      if (!example) break;
      this.buffer.push(example);
    }
    const size = this.buffer.length - this.head;
    if (size === 0) return undefined;
    if (!this.settings.shuffle) {
      const example = this.buffer[this.head++];
      if (this.head > 4096 && this.head * 2 > this.buffer.length) {
        this.buffer = this.buffer.slice(this.head);
        this.head = 0;
      }
      return example;
    }
    const i = this.rng.int(size);
    const example = this.buffer[i];
    this.buffer[i] = this.buffer[size - 1];
    this.buffer.pop();
    return example;
  }

  private async nextGroup(): Promise<Group | undefined> {
    const example = await this.nextExample();
    return example && this.sampleGroup(example);
  }

  private sampleGroup(example: TrainExample): Group {
    const { rng } = this;
    const negCount = this.settings.groupSize - 1;
    const posIndex = rng.int(example.pos.length);
    const passages = [example.pos[posIndex]];
    let negIndices: number[] = [];
    if (negCount > 0 && example.neg.length > 0) {
      const all = example.neg.map((_, i) => i);
      const pool = all.length < negCount ? Array.from({ length: Math.ceil(negCount / all.length) }, () => all).flat() : all;
      negIndices = rng.sample(pool, negCount);
      for (const i of negIndices) passages.push(example.neg[i]);
    } else if (negCount > 0) {
      passages.push(...this.borrowNegatives(example, negCount));
    }
    const group: Group = { example, passages };
    if (this.options.knowledgeDistillation) {
      if (!example.posScores || !example.negScores || (negCount > 0 && example.neg.length === 0)) {
        throw new DataError(
          example.path,
          example.line,
          'pos_scores and neg_scores (and a non-empty neg) are needed for knowledge distillation',
          { field: example.posScores ? 'neg_scores' : 'pos_scores', reason: 'missing scores' },
        );
      }
      group.scores = [example.posScores[posIndex], ...negIndices.map((i) => example.negScores![i])];
    }
    return group;
  }

  private borrowNegatives(example: TrainExample, count: number): string[] {
    const own = new Set(example.pos);
    const chosen = new Set<string>();
    const others = this.recent.filter((other) => other !== example);
    for (let attempt = 0; chosen.size < count && others.length > 0 && attempt < 50 * count; attempt++) {
      const other = this.rng.choice(others);
      const k = this.rng.int(other.pos.length + other.neg.length);
      const passage = k < other.pos.length ? other.pos[k] : other.neg[k - other.pos.length];
      if (!own.has(passage)) chosen.add(passage);
    }
    if (chosen.size < count) {
      throw new DataError(
        example.path,
        example.line,
        `neg is empty and other lines offer only ${chosen.size} distinct passages to use as its ${count} negatives`,
        { field: 'neg', reason: 'too few negatives' },
      );
    }
    return [...chosen];
  }

  /** The groups of the next batch, or undefined at the end of the epoch; `dropLast` drops every short batch. */
  private async nextGroups(): Promise<Group[] | undefined> {
    for (;;) {
      const groups = await this.collectGroups();
      if (!groups || groups.length === this.settings.batchSize || !this.settings.dropLast) return groups;
    }
  }

  private async collectGroups(): Promise<Group[] | undefined> {
    const { batchSize, noDuplicates } = this.settings;
    const batch: Group[] = [];
    if (!noDuplicates) {
      while (batch.length < batchSize) {
        const group = await this.nextGroup();
        if (!group) break;
        batch.push(group);
      }
    } else {
      const texts = new Set<string>();
      const fits = (group: Group) => !textsOf(group).some((text) => texts.has(text));
      const take = (group: Group) => {
        batch.push(group);
        for (const text of textsOf(group)) texts.add(text);
      };
      const stillDeferred: Group[] = [];
      for (const group of this.deferred) {
        if (batch.length < batchSize && fits(group)) take(group);
        else stillDeferred.push(group);
      }
      this.deferred = stillDeferred;
      // A batch that cannot be filled from a bounded look-ahead leaves short rather than stalling.
      const maxDeferred = Math.max(8 * batchSize, 64);
      while (batch.length < batchSize && this.deferred.length < maxDeferred) {
        const group = await this.nextGroup();
        if (!group) break;
        if (fits(group)) take(group);
        else this.deferred.push(group);
      }
    }
    return batch.length === 0 ? undefined : batch;
  }

  private toBatch(groups: Group[]): TrainBatch {
    const { kind, queryInstruction, passageInstruction } = this.options;
    const queries: string[] = [];
    const passages: string[] = [];
    const scores: number[] = [];
    for (const { example, passages: texts, scores: groupScores } of groups) {
      const queryPrompt = kind === 'embedder' ? example.prompt : example.queryPrompt;
      queries.push(
        queryInstruction == null ? example.query : applyFormat(this.queryFormat, queryPrompt ?? queryInstruction, example.query),
      );
      const passagePrompt = kind === 'reranker' ? example.passagePrompt : undefined;
      for (const text of texts) {
        passages.push(passageInstruction == null ? text : applyFormat(this.passageFormat, passagePrompt ?? passageInstruction, text));
      }
      if (groupScores) scores.push(...groupScores);
    }
    const batch: TrainBatch = {
      epoch: this.epochNumber,
      index: this.batchesInEpoch,
      groupSize: this.settings.groupSize,
      queries,
      passages,
      sources: groups.map(({ example }) => ({ path: example.path, line: example.line })),
    };
    if (this.options.knowledgeDistillation) batch.teacherScores = scores;
    return batch;
  }
}

const FNV_OFFSET = 0x811c9dc5;

function fnv1a(hash: number, text: string): number {
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return Math.imul(hash ^ 0x0a, 0x01000193) >>> 0; // a separator, so that "ab"+"c" differs from "a"+"bc"
}

function textsOf(group: Group): string[] {
  return [group.example.query, ...group.passages];
}
