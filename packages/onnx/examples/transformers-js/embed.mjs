// Sentence embeddings from an embedder folder exported by `kotune export --format onnx`.
// Usage: node embed.mjs MODEL_DIR
import { resolve } from 'node:path';
import { pipeline } from '@huggingface/transformers';

const dir = resolve(process.argv[2] ?? 'my-embedder');
const extractor = await pipeline('feature-extraction', dir, { dtype: 'fp32', local_files_only: true });
// pooling as the folder's 1_Pooling/config.json says ('cls' or 'mean'); normalize when it has 2_Normalize
const output = await extractor(['query: 배고파', 'passage: 밥 먹을 시간이에요.'], { pooling: 'cls', normalize: true });
const [query, passage] = output.tolist();
const cosine = query.reduce((sum, x, i) => sum + x * passage[i], 0); // normalised: the dot product is the cosine
console.log(JSON.stringify({ dims: output.dims, cosine, query }));
