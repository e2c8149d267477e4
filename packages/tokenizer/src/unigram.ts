/**
 * SentencePiece Unigram segmentation with the Rust `tokenizers` crate's exact choices (`models/unigram/model.rs`,
 * `encode_optimized`), replacing `@huggingface/tokenizers`' `Unigram`, which builds a node lattice per call and is
 * the slow part of that library (≈ 800 pairs/s at 256 tokens here).
 *
 * - The input is split into words on `▁` with the `▁` kept at the start of each word (Rust's Metaspace pre-tokenizer
 *   with `split: true`; the JS Metaspace does not split). Words are segmented independently and memoised: Korean
 *   text repeats its words (particles, endings, frequent nouns) enough that most words are cache hits.
 * - Viterbi over code points: for every start position, every vocabulary piece starting there (shortest first)
 *   proposes `score(path to start) + score(piece)` for the position where it ends; a proposal replaces the best so
 *   far only when strictly greater, so among equal scores the earliest start wins (Rust's tie rule). A position with
 *   no one-code-point piece also gets an `<unk>` proposal scored `min(score) − 10`.
 * - Backtracking fuses consecutive `<unk>`s into one (`fuse_unk`).
 */
import { Model } from './hf.ts';

const UNK_PENALTY = 10;
const METASPACE = '\u2581';
/** Words memoised before the cache is emptied (bounded memory on endless streams of new words). */
const CACHE_LIMIT = 200_000;

export class SentencePieceUnigram extends Model {
  readonly unkId: number;
  private readonly scores: Float64Array;
  private readonly unkScore: number;
  /** Trie over UTF-16 code units: `children[node]` maps a code unit to the next node; `pieceAt[node]` is the
   * id of the piece spelled by the path to `node`, or −1. */
  private readonly children: Map<number, number>[] = [new Map()];
  private readonly pieceAt: number[] = [-1];
  private readonly cache = new Map<string, number[]>();
  private bestScore = new Float64Array(64);
  private startsAt = new Int32Array(64);
  private pieceEnding = new Int32Array(64);

  /** @param vocab `model.vocab` of tokenizer.json (`[piece, score]`, index = id); `source` names the file in errors. */
  constructor(vocab: [string, number][], unkId: number, source: string) {
    super({ type: 'Unigram', vocab, unk_id: unkId });
    if (!Number.isInteger(unkId) || unkId < 0 || unkId >= vocab.length) {
      throw new Error(`${source}: model.unk_id ${unkId} is not an id of the ${vocab.length}-piece vocabulary`);
    }
    this.unkId = unkId;
    this.unk_token_id = unkId;
    this.unk_token = vocab[unkId]![0];
    this.fuse_unk = false; // fused here, per word, as Rust does
    this.scores = new Float64Array(vocab.length);
    let minScore = Infinity;
    for (let id = 0; id < vocab.length; id++) {
      const entry = vocab[id];
      if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') {
        throw new Error(`${source}: model.vocab[${id}] is ${JSON.stringify(entry)}, expected ["piece", score]`);
      }
      const [piece, score] = entry;
      this.vocab[id] = piece;
      this.tokens_to_ids.set(piece, id);
      this.scores[id] = score;
      if (score < minScore) minScore = score;
      this.insert(piece, id);
    }
    this.unkScore = minScore - UNK_PENALTY;
  }

  /** Token strings, for `@huggingface/tokenizers`' pipeline (a fused `<unk>` comes back as the `<unk>` piece). */
  encode(pretokenized: string[]): string[] {
    const out: string[] = [];
    for (const text of pretokenized) for (const id of this.encodeIds(text)) out.push(this.vocab[id]!);
    return out;
  }

  /** Ids of a normalised, metaspaced text (`▁word▁word…`). */
  encodeIds(text: string): number[] {
    const ids: number[] = [];
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf(METASPACE, start + 1);
      if (end < 0) end = text.length;
      const word = text.slice(start, end);
      let wordIds = this.cache.get(word);
      if (wordIds === undefined) {
        wordIds = this.segment(word);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, wordIds);
      }
      for (const id of wordIds) ids.push(id);
      start = end;
    }
    return ids;
  }

  private insert(piece: string, id: number): void {
    let node = 0;
    for (let i = 0; i < piece.length; i++) {
      const unit = piece.charCodeAt(i);
      let next = this.children[node]!.get(unit);
      if (next === undefined) {
        next = this.pieceAt.length;
        this.children.push(new Map());
        this.pieceAt.push(-1);
        this.children[node]!.set(unit, next);
      }
      node = next;
    }
    // A repeated piece keeps its last id, as Rust's `token_to_ids` map does.
    this.pieceAt[node] = id;
  }

  private segment(word: string): number[] {
    const n = word.length;
    if (this.bestScore.length <= n) {
      this.bestScore = new Float64Array(2 * n + 1);
      this.startsAt = new Int32Array(2 * n + 1);
      this.pieceEnding = new Int32Array(2 * n + 1);
    }
    const { bestScore, startsAt, pieceEnding, children, pieceAt, scores } = this;
    startsAt.fill(-1, 0, n + 1);
    bestScore[0] = 0;
    for (let start = 0; start < n; ) {
      const charWidth = isHighSurrogate(word.charCodeAt(start)) && start + 1 < n ? 2 : 1;
      const base = bestScore[start]!;
      let hasOneCharPiece = false;
      let node = 0;
      for (let pos = start; pos < n; pos++) {
        const next = children[node]!.get(word.charCodeAt(pos));
        if (next === undefined) break;
        node = next;
        const id = pieceAt[node]!;
        if (id < 0) continue;
        const end = pos + 1;
        const candidate = base + scores[id]!;
        if (startsAt[end]! < 0 || candidate > bestScore[end]!) {
          bestScore[end] = candidate;
          startsAt[end] = start;
          pieceEnding[end] = id;
        }
        if (end - start === charWidth) hasOneCharPiece = true;
      }
      if (!hasOneCharPiece) {
        const end = start + charWidth;
        const candidate = base + this.unkScore;
        if (startsAt[end]! < 0 || candidate > bestScore[end]!) {
          bestScore[end] = candidate;
          startsAt[end] = start;
          pieceEnding[end] = this.unkId;
        }
      }
      start += charWidth;
    }
    const reversed: number[] = [];
    for (let end = n; end > 0; end = startsAt[end]!) {
      const id = pieceEnding[end]!;
      if (id === this.unkId && reversed.length > 0 && reversed[reversed.length - 1] === this.unkId) continue;
      reversed.push(id);
    }
    return reversed.reverse();
  }
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}
