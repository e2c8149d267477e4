/**
 * The parts of `@huggingface/tokenizers` used here, typed. The package's `index.d.ts` re-exports its classes through
 * extension-less relative paths, which `moduleResolution: NodeNext` cannot follow, so its own types arrive empty
 * (`any` or missing); the runtime exports are fine.
 */
import * as hf from '@huggingface/tokenizers';

/** Normalizers and pre-tokenizers are callable objects (`Callable` in the library). */
export interface NormalizerLike {
  (text: string): string;
  normalize(text: string): string;
}

export interface ModelLike {
  vocab: string[];
  tokens_to_ids: Map<string, number>;
  unk_token_id?: number;
  unk_token?: string;
  fuse_unk: boolean;
  encode(tokens: string[]): string[];
}

export interface Pipeline {
  normalizer: NormalizerLike | null;
  pre_tokenizer: ((text: string, options?: { section_index?: number }) => string[]) | null;
  model: ModelLike;
  /** Token strings without special tokens. */
  tokenize(text: string): string[];
}

const lib = hf as unknown as Record<string, unknown>;
export const Tokenizer = lib.Tokenizer as new (tokenizerJson: object, tokenizerConfig: object) => Pipeline;
export const Normalizer = lib.Normalizer as abstract new (config: object) => { normalize(text: string): string };
export const Model = lib.Model as abstract new (config: object) => Omit<ModelLike, 'encode'> & { encode(tokens: string[]): string[] };
export const PrecompiledNormalizer = lib.PrecompiledNormalizer as new (config: object) => NormalizerLike;
export const SequenceNormalizer = lib.SequenceNormalizer as new (
  config: object,
) => NormalizerLike & { normalizers: (NormalizerLike | null)[] };
