/**
 * `kotune metrics --qrels FILE --run FILE [--output FILE]`: sentence-transformers IR metrics of a TREC run,
 * printed as one JSON object (metric means, then how many queries were evaluated and which were missing).
 */
import { evaluateRun, readQrels, readRun, TrecFormatError, writeFileAtomic } from '@kotune/metrics';
import { parseCommandArgs, type Flags } from '../args.ts';

const SYNOPSIS = '--qrels FILE --run FILE [--output FILE]';
const FLAGS: Flags = {
  qrels: { type: 'string', required: true, help: 'TREC qrels: "qid iter docid relevance" per line (relevance > 0 is relevant)' },
  run: { type: 'string', required: true, help: 'TREC run: "qid Q0 docid rank score tag" per line (ranked by score, ties by docid)' },
  output: { type: 'string', help: 'also write the JSON object to this file' },
};

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('metrics', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const { values } = parsed;
  let result;
  try {
    result = evaluateRun(readQrels(values.qrels as string), readRun(values.run as string));
  } catch (error) {
    // Format errors already say `path:line: `; the generic handler prints them without a stack.
    if (error instanceof TrecFormatError) throw new Error(error.message);
    throw error;
  }
  const summary = {
    ...result.means,
    queries: result.evaluated,
    queries_without_relevant_skipped: result.skippedNoRelevant,
    queries_missing_from_run: result.missingFromRun.length,
    missing_queries_policy: 'scored 0 on every metric (sentence-transformers); trec_eval would skip them',
    run_queries_not_in_qrels: result.notInQrels.length,
  };
  const json = JSON.stringify(summary);
  console.log(json);
  if (result.missingFromRun.length > 0) {
    const shown = result.missingFromRun.slice(0, 10).join(', ') + (result.missingFromRun.length > 10 ? ', ...' : '');
    console.error(
      `kotune metrics: ${result.missingFromRun.length} of ${result.evaluated} qrels queries have no line in the run and score 0: ${shown}`,
    );
  }
  if (values.output) writeFileAtomic(values.output as string, `${JSON.stringify(summary, null, 2)}\n`);
}
