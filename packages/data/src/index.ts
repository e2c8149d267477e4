export { DataError, describeFileError, fileErrorReason, wordFileErrors } from './errors.ts';
export { jsonSyntaxError, readJsonl, type JsonlRecord, type ReadJsonlOptions } from './jsonl.ts';
export { Rng, type RngState } from './rng.ts';
export { BadLineTally, parseTrainExample, readTrainExamples, type ReadTrainOptions, type TrainExample } from './train-example.ts';
export { TrainSampler, applyFormat, rerankerPairs, type TrainBatch, type TrainSamplerOptions, type TrainSamplerState } from './sampler.ts';
