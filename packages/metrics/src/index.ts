export {
  DEFAULT_CUTOFFS,
  cutoffsAt,
  evaluateRankings,
  metricNames,
  queryMetrics,
  rankCandidates,
  type IrCutoffs,
  type IrEvaluation,
  type IrMetrics,
  type RankedQuery,
  type ScoredCandidate,
} from './ir.ts';
export {
  TrecFormatError,
  evaluateRun,
  formatQrels,
  formatRun,
  readQrels,
  readRun,
  writeQrels,
  writeRun,
  type Qrels,
  type Run,
  type TrecEvaluation,
} from './trec.ts';
export { writeFileAtomic } from './atomic.ts';
