export { XLMRTokenizer, TOKENIZER_FILES } from './tokenizer.ts';
export type { Encoded, EncodeBatchOptions, EncodePairsOptions, RerankerPairsOptions, Padding } from './tokenizer.ts';
export type { PairTruncation } from './truncation.ts';
