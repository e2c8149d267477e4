/**
 * `pnpm bench long-train`: training on long inputs fits in memory (issue 14, item 5). bge-m3 and
 * bge-reranker-v2-m3 take 8,192 tokens; here one reranker training step of `kotune train` (1 query, G = 2, 2,048
 * tokens a pair: query 512 + passage 1,536; group CE, clipping, AdamW) on XLM-R large with 8,194 positions and the
 * 250,002 vocabulary, random init, on the `cpu` backend with the native kernels. Each encoder layer runs natively in
 * training, its attention by blocks both ways (src/encoder_train.cc): what a layer keeps for its backward is
 * 6·hidden + ffn floats a token, where the op-by-op path keeps the [heads, n, n] probabilities (536 MB a layer
 * here, 12.9 GB over 24 layers, on top of 9 GB of weights, gradients and moments). The native path's loss and
 * gradients equal the op-by-op model's (packages/xlm-roberta/test/native-encoder-train.test.ts, the blocked path
 * at 600 tokens).
 *
 * Prints the step's seconds, tokens/s, the optimizer's share and the process's peak RSS, then one JSON line.
 *   pnpm bench long-train                       (about 5 minutes on 2 cores)
 *   npx tsx test/bench/long-train.bench.ts --base  (XLM-R base instead: quicker)
 */
import { initBackend } from '@kotune/engine';
import { trainingSetup } from './training.ts';

const SEQ = 2048;
const XLMR = { vocab_size: 250002, max_position_embeddings: 8194, type_vocab_size: 1, layer_norm_eps: 1e-5 };
const base = process.argv.includes('--base');
const model = base
  ? { ...XLMR, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072 }
  : { ...XLMR, hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, intermediate_size: 4096 };

const info = await initBackend({ backend: 'cpu', log: null });
console.log(`backend: ${info.description}`);
const setup = await trainingSetup('reranker', { modelConfig: model }, { queries: 1, groupSize: 2, seq: SEQ, textWords: 2400 });
const start = performance.now();
const loss = setup.step();
const seconds = (performance.now() - start) / 1000;
const peakRssMb = process.resourceUsage().maxRSS / 1024;
const tokens = 2 * SEQ;
const label = base ? 'XLM-R base' : 'XLM-R large';
console.log(
  `${label}, 8,194 positions: one reranker training step on 1 query x G = 2 x ${SEQ} tokens: ${seconds.toFixed(1)} s ` +
    `(${(tokens / seconds).toFixed(0)} tokens/s; optimizer ${setup.optimizerSeconds.toFixed(2)} s), loss ${loss.toFixed(4)}, peak RSS ${peakRssMb.toFixed(0)} MB`,
);
setup.dispose();
console.log(
  JSON.stringify({
    model: label,
    seq: SEQ,
    group_size: 2,
    seconds,
    tokens_per_s: tokens / seconds,
    optimizer_s: setup.optimizerSeconds,
    loss,
    peak_rss_mb: peakRssMb,
  }),
);
