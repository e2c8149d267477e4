/**
 * Character bigrams, the near-paraphrase test of the demo data generators: Korean sentences that say the same
 * thing share most of their syllable pairs, whatever the spacing and punctuation.
 */

/** The distinct bigrams of `text` with whitespace and punctuation removed (a one-character text is its own). */
export function bigrams(text: string): Set<string> {
  const compact = text.replace(/[\s\p{P}]/gu, '');
  const grams = new Set<string>();
  for (let i = 0; i + 1 < compact.length; i++) grams.add(compact.slice(i, i + 2));
  if (compact.length === 1) grams.add(compact);
  return grams;
}

/** Dice coefficient 2|A∩B| / (|A|+|B|) of two bigram sets (0 for two empty sets). */
export function dice(a: Set<string>, b: Set<string>): number {
  let shared = 0;
  for (const g of a) if (b.has(g)) shared++;
  return (2 * shared) / (a.size + b.size || 1);
}
