/**
 * `kotune encode --model M --input texts.jsonl [--prefix STR | --prompt-name NAME] [--max-length N] [--batch-size N] [--output FILE]`:
 * one `{"embedding": [...]}` line per `{"text"}` input line, in order, with the pooling, normalisation and max
 * length of the model folder's sentence-transformers files. Texts get the prompt sentence-transformers'
 * `encode` would give them: `--prefix`, else the folder's prompt `--prompt-name` (e.g. `query`, `document`),
 * else its `default_prompt_name` prompt, else none. `--max-length` overrides the folder's max length.
 * Streams in chunks (constant memory).
 */
import { initBackend } from '@kotune/engine';
import { Embedder } from '@kotune/xlm-roberta';
import { intFlag, parseCommandArgs, type Flags } from '../args.ts';
import { CliError } from '../errors.ts';
import { mapJsonlChunks, stringField } from './score.ts';

const SYNOPSIS = '--model M --input texts.jsonl [--prefix STR | --prompt-name NAME] [--max-length N] [--batch-size N] [--output FILE]';
const FLAGS: Flags = {
  model: { type: 'string', required: true, help: 'embedder folder (sentence-transformers or Hugging Face) or repo id' },
  input: { type: 'string', required: true, help: 'JSONL, one {"text": ...} per line' },
  prefix: { type: 'string', help: 'text put before every input, e.g. "query: " (default: the folder\'s default prompt, if any)' },
  'prompt-name': {
    type: 'string',
    help: 'put the folder\'s prompt of this name before every input (config_sentence_transformers.json "prompts", e.g. query, document)',
  },
  'max-length': { type: 'string', help: "tokens per text, special tokens included (default: the folder's max_seq_length)" },
  'batch-size': { type: 'string', default: '32', help: 'texts per forward pass' },
  output: { type: 'string', help: 'write the lines here (default: stdout)' },
};

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('encode', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const v = parsed.values;
  const batchSize = intFlag('encode', 'batch-size', v['batch-size'], 32);
  const maxLength = v['max-length'] === undefined ? undefined : intFlag('encode', 'max-length', v['max-length'], 512);
  const input = v.input as string;
  const prefix = v.prefix as string | undefined;
  const promptName = v['prompt-name'] as string | undefined;
  if (prefix !== undefined && promptName !== undefined) throw new CliError('encode: give --prefix or --prompt-name, not both');
  await initBackend({ backend: v.backend as string | undefined });
  const embedder = await Embedder.load(v.model as string);
  try {
    await mapJsonlChunks(
      input,
      v.output as string | undefined,
      (value, line) => stringField(value, 'text', input, line),
      async (texts) => {
        const embeddings = await embedder.encode(texts, { prefix, promptName, batchSize, maxLength });
        return embeddings.map((embedding) => `{"embedding":[${Array.from(embedding, float32Text).join(',')}]}`);
      },
    );
  } finally {
    embedder.dispose();
  }
}

/** The shortest decimal that reads back as the same float32 (about half the digits of a float64 print). */
function float32Text(x: number): string {
  for (let digits = 1; digits < 9; digits++) {
    const text = Number(x.toPrecision(digits));
    if (Math.fround(text) === x) return String(text);
  }
  return String(Number(x.toPrecision(9)));
}
