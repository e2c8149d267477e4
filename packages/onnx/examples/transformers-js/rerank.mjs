// Scores (query, passage) pairs with a reranker folder exported by `kotune export --format onnx`.
// Usage: node rerank.mjs MODEL_DIR
import { resolve } from 'node:path';
import { AutoModelForSequenceClassification, AutoTokenizer } from '@huggingface/transformers';

const dir = resolve(process.argv[2] ?? 'checkpoints/demo'); // an absolute path: 'a/b' would be read as a hub id
const tokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
const model = await AutoModelForSequenceClassification.from_pretrained(dir, { dtype: 'fp32', local_files_only: true });

const queries = ['배고프다', '배고프다'];
const passages = ['뭐라도 챙겨 드세요.', '좋은 꿈 꾸세요.'];
const inputs = tokenizer(queries, { text_pair: passages, padding: true, truncation: true, max_length: 512 });
const { logits } = await model(inputs); // [pairs, 1]
const scores = logits
  .sigmoid()
  .tolist()
  .map(([score]) => score); // FlagReranker's normalize=True
console.log(JSON.stringify(scores));
