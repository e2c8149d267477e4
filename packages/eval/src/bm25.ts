/**
 * Okapi BM25 (Robertson & Zaragoza, 2009) over any tokenisation, with Lucene's non-negative idf:
 *
 *   score(q, d) = Σ_{t ∈ q} idf(t) · tf(t, d) · (k1 + 1) / (tf(t, d) + k1 · (1 − b + b · |d| / avgdl))
 *   idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
 *
 * A query term repeated counts once per occurrence (as rank_bm25 and Lucene do). Used as the lexical first
 * stage of `kotune mine` when no embedder is given.
 */
import type { Hit } from './topk.ts';
import { TopK } from './topk.ts';

export interface Bm25Options {
  k1?: number;
  b?: number;
}

export class Bm25Index<Token> {
  private readonly postings = new Map<Token, { docs: number[]; tfs: number[] }>();
  private readonly lengths: number[] = [];
  private readonly k1: number;
  private readonly b: number;

  constructor(documents: Iterable<readonly Token[]>, { k1 = 1.2, b = 0.75 }: Bm25Options = {}) {
    this.k1 = k1;
    this.b = b;
    for (const tokens of documents) {
      const doc = this.lengths.length;
      this.lengths.push(tokens.length);
      const counts = new Map<Token, number>();
      for (const token of tokens) counts.set(token, (counts.get(token) ?? 0) + 1);
      for (const [token, tf] of counts) {
        let list = this.postings.get(token);
        if (!list) this.postings.set(token, (list = { docs: [], tfs: [] }));
        list.docs.push(doc);
        list.tfs.push(tf);
      }
    }
  }

  get size(): number {
    return this.lengths.length;
  }

  idf(token: Token): number {
    const df = this.postings.get(token)?.docs.length ?? 0;
    return Math.log(1 + (this.size - df + 0.5) / (df + 0.5));
  }

  /** BM25 score of every document that shares a term with the query (others score 0). */
  scores(query: readonly Token[]): Map<number, number> {
    const avgdl = this.lengths.reduce((a, b) => a + b, 0) / Math.max(1, this.size);
    const scores = new Map<number, number>();
    for (const token of query) {
      const list = this.postings.get(token);
      if (!list) continue;
      const idf = this.idf(token);
      for (let i = 0; i < list.docs.length; i++) {
        const doc = list.docs[i];
        const tf = list.tfs[i];
        const norm = tf + this.k1 * (1 - this.b + (this.b * this.lengths[doc]) / (avgdl || 1));
        scores.set(doc, (scores.get(doc) ?? 0) + (idf * tf * (this.k1 + 1)) / norm);
      }
    }
    return scores;
  }

  /** The k best documents, ties by index; documents without a shared term are not returned. */
  search(query: readonly Token[], k: number): Hit[] {
    const top = new TopK(k);
    for (const [doc, score] of this.scores(query)) top.push(doc, score);
    return top.sorted();
  }
}

/** Whitespace words, the baseline tokenisation the tokenizer pieces are compared with. */
export function whitespaceWords(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== '');
}
