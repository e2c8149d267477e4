/**
 * SentencePiece's precompiled character map (`"type": "Precompiled"` in tokenizer.json), applied exactly as the
 * Rust `tokenizers` crate does (`normalizers/precompiled.rs` on top of the `spm_precompiled` crate).
 *
 * `@huggingface/tokenizers`' own `PrecompiledNormalizer` ignores the map and runs `String.prototype.normalize('NFKC')`
 * instead, which differs from the map on Korean input in two ways that matter:
 *  - NFKC composes conjoining jamo (`ᄀ` U+1100 + `ᅡ` U+1161 → `가`), so NFD Hangul and jamo typed mid-word
 *    (`ㄱㅏ` → `가` after the map) became syllables; the map has no such sequence rule and keeps them apart;
 *  - it turns U+200B–U+200F (ZWJ included) into spaces, splitting emoji ZWJ sequences into several `<unk>`s.
 *
 * The blob is `u32le trieBytes`, a darts-clone double array of `trieBytes / 4` u32 units keyed by UTF-8 bytes, then
 * the NUL-separated replacement strings (the trie's values are byte offsets into them).
 *
 * Rust's rule, quirks included: the text is cut into extended grapheme clusters; a cluster shorter than 6 UTF-8
 * bytes is looked up whole, and if *any* key is a prefix of it the replacement of the *shortest* such key stands for
 * the whole cluster (the rest of the cluster is dropped: `ｅ◌́` → `e`); otherwise every code point is looked up on
 * its own and kept when it has no entry.
 */
import { Normalizer } from './hf.ts';

/** Code points that can join a neighbour into one grapheme cluster (UAX #29 Extend, ZWJ, SpacingMark, Prepend,
 * Regional_Indicator, Hangul L/V/T jamo, CR). Texts without them are one cluster per code point, which lets the
 * common case skip `Intl.Segmenter`. Over-inclusive on purpose (all of Mc): a false positive only costs time. */
const CLUSTER_JOINER =
  // biome-ignore lint/suspicious/noMisleadingCharacterClass: a set of single code points (U+200D among them), not a sequence
  /[\r\p{Grapheme_Extend}\p{Mc}\u200D\p{Emoji_Modifier}\p{Regional_Indicator}\u0E33\u0EB3\u1100-\u11FF\uA960-\uA97F\uD7B0-\uD7FF\u0600-\u0605\u06DD\u070F\u0890\u0891\u08E2\u0D4E\u{110BD}\u{110CD}\u{111C2}\u{111C3}\u{1193F}\u{11941}\u{11A3A}\u{11A84}-\u{11A89}\u{11D46}\u{11F02}]/u;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export class SentencePieceCharsmap extends Normalizer {
  private readonly units: Uint32Array;
  private readonly replacements: Uint8Array;
  /** Replacement of each single code point looked up so far (`null`: no entry, kept as is). */
  private readonly perCodePoint = new Map<number, string | null>();
  /** BMP code points known to have no entry (the common case, answered without a map lookup). */
  private readonly keptBmp = new Uint8Array(0x10000);
  private segmenter: Intl.Segmenter | undefined;

  /** @param blob the decoded `precompiled_charsmap`; `source` names the file in errors. */
  constructor(blob: Uint8Array, source: string) {
    super({ type: 'Precompiled' });
    if (blob.byteLength < 4)
      throw new Error(`${source}: normalizer.precompiled_charsmap is ${blob.byteLength} bytes, too short to hold its header`);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieBytes = view.getUint32(0, true);
    if (trieBytes % 4 !== 0 || 4 + trieBytes > blob.byteLength || trieBytes === 0) {
      throw new Error(
        `${source}: normalizer.precompiled_charsmap declares a ${trieBytes}-byte trie but holds ${blob.byteLength - 4} bytes after its header`,
      );
    }
    this.units = new Uint32Array(trieBytes / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.replacements = blob.subarray(4 + trieBytes);
  }

  static fromBase64(base64: string, source: string): SentencePieceCharsmap {
    return new SentencePieceCharsmap(new Uint8Array(Buffer.from(base64, 'base64')), source);
  }

  normalize(text: string): string {
    if (!CLUSTER_JOINER.test(text)) return this.mapCodePoints(text);
    this.segmenter ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
    let out = '';
    for (const { segment } of this.segmenter.segment(text)) {
      if (segment.length > 1 && utf8Length(segment) < 6) {
        const whole = this.lookup(utf8.encode(segment));
        if (whole !== null) {
          out += whole;
          continue;
        }
      }
      out += this.mapCodePoints(segment);
    }
    return out;
  }

  /** Each code point replaced by its own entry (a one-code-point cluster is looked up whole: the same thing). */
  private mapCodePoints(text: string): string {
    let out = '';
    let kept = 0; // start of the run of code points copied unchanged
    for (let i = 0; i < text.length; ) {
      const cp = text.codePointAt(i)!;
      if (cp <= 0xffff && this.keptBmp[cp] === 1) {
        i++;
        continue;
      }
      const width = cp > 0xffff ? 2 : 1;
      const replacement = this.codePointReplacement(cp);
      if (replacement !== null) {
        out += text.slice(kept, i) + replacement;
        kept = i + width;
      }
      i += width;
    }
    return kept === 0 ? text : out + text.slice(kept);
  }

  private codePointReplacement(cp: number): string | null {
    let replacement = this.perCodePoint.get(cp);
    if (replacement === undefined) {
      replacement = this.lookup(utf8.encode(String.fromCodePoint(cp)));
      this.perCodePoint.set(cp, replacement);
      if (replacement === null && cp <= 0xffff) this.keptBmp[cp] = 1;
    }
    return replacement;
  }

  /** Replacement of the shortest key that is a prefix of `key` (darts-clone common-prefix search), or null. */
  private lookup(key: Uint8Array): string | null {
    const units = this.units;
    let pos = offset(units[0]!);
    for (const byte of key) {
      if (byte === 0) break;
      pos ^= byte;
      const unit = units[pos];
      if (unit === undefined || label(unit) !== byte) return null;
      pos ^= offset(unit);
      if ((unit >>> 8) & 1) return this.replacementAt(units[pos]! & 0x7fffffff);
    }
    return null;
  }

  private replacementAt(start: number): string {
    let end = start;
    while (end < this.replacements.length && this.replacements[end] !== 0) end++;
    return utf8Decoder.decode(this.replacements.subarray(start, end));
  }
}

function offset(unit: number): number {
  return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
}

function label(unit: number): number {
  return unit & ((1 << 31) | 0xff);
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
