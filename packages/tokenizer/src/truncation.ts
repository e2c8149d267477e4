/**
 * Pair and single truncation with the Rust `tokenizers` crate's semantics (`utils/truncation.rs`,
 * `truncate_encodings`), on id arrays that do not yet hold the special tokens: `maxLength` here is the caller's
 * max length minus the special tokens the template adds. Truncation keeps the start of each sequence.
 */

export type PairTruncation = 'longest_first' | 'only_second';

export const SEQUENCE_TOO_SHORT = 'Truncation error: Sequence to truncate too short to respect the provided max_length';

/** `[first, second]` cut so that their lengths add up to at most `maxLength`. */
export function truncatePair(first: number[], second: number[], maxLength: number, strategy: PairTruncation): [number[], number[]] {
  const total = first.length + second.length;
  if (total <= maxLength) return [first, second];
  if (strategy === 'only_second') {
    const toRemove = total - maxLength;
    // Rust demands strictly more tokens than it removes: emptying the second sequence is an error too.
    if (second.length <= toRemove) throw new Error(SEQUENCE_TOO_SHORT);
    return [first, second.slice(0, second.length - toRemove)];
  }
  // longest_first: the shorter sequence keeps its length when the longer one can absorb the whole cut, else both
  // get half of maxLength, the odd token going to the longer one (to the second on a tie).
  let short = Math.min(first.length, second.length);
  let long: number;
  if (short > maxLength) long = short;
  else long = Math.max(short, maxLength - short);
  if (short + long > maxLength) {
    short = Math.floor(maxLength / 2);
    long = short + (maxLength % 2);
  }
  const [n1, n2] = first.length > second.length ? [long, short] : [short, long];
  return [first.slice(0, n1), second.slice(0, n2)];
}
