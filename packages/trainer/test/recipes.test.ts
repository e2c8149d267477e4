/**
 * The four recipes of examples/ with their base model's architecture (examples/models/*.json) at reduced depth
 * and width: each trains 2 steps from a random init with the recipe's own G, lengths, batch and accumulation on
 * the shipped data, exports, reloads and scores (or encodes) as the in-memory model does. At true size the same
 * command runs on cpu (the README's recipe table); here the memory plan is checked to send it there.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fitsWasm, initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { loadTrainConfig, train, trainingMemoryOf } from '../src/index.ts';

await initBackend({ backend: 'wasm', log: null });

const ROOT = new URL('../../../', import.meta.url).pathname;
const TOKENIZER = join(ROOT, 'packages/tokenizer/assets/ko-en-32k');
const RECIPES = {
  'ko-reranker': 'bge-reranker-large',
  'bge-reranker-v2-m3-ko': 'bge-reranker-v2-m3',
  koe5: 'multilingual-e5-large',
  'bge-m3-ko': 'bge-m3',
} as const;
/** Everything but the size of the layers stays the base model's: vocabulary, positions, eps, type vocabulary. */
const REDUCED = { hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 32 };

const architecture = (model: string) => join(ROOT, 'examples/models', `${model}.json`);
const recipe = (name: string) => join(ROOT, 'examples', `${name}.json`);
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

const QUERY = '주말에 뭐 하지';
const PASSAGES = ['친구들과 여행을 가보세요.', '술이 웬수죠.', '충분히 쉬는 것도 좋아요.'];

for (const [name, model] of Object.entries(RECIPES)) {
  test(`${name}: the true architecture (${model}) from a random init, at reduced width, trains 2 steps, exports, reloads and scores alike`, async () => {
    const file = recipe(name);
    const out = mkdtempSync(join(tmpdir(), `kotune-recipe-${name}-`));
    try {
      const { _comment, ...arch } = readJson(architecture(model));
      const config = loadTrainConfig(file, {
        overrides: {
          model_config: { ...arch, ...REDUCED },
          tokenizer_name_or_path: TOKENIZER,
          max_steps: 2,
          eval_data: [],
          output_dir: out,
        },
      });
      const lines: string[] = [];
      const result = await train(config, { print: (l) => lines.push(l), progressStream: devNull, handleSignals: false, keepModel: true });
      assert.is(result.globalStep, 2);
      const file_ = readJson(file);
      const accumulation = (file_.gradient_accumulation_steps as number | undefined) ?? 1;
      const plan = lines.join('\n');
      assert.ok(
        plan.includes(
          `\nbatch       ${file_.per_device_train_batch_size} queries x ${file_.train_group_size} passages, ` +
            `accumulation ${accumulation} -> effective batch ${(file_.per_device_train_batch_size as number) * accumulation} queries\n`,
        ),
        plan,
      );

      const saved = readJson(join(out, 'config.json'));
      for (const key of ['vocab_size', 'max_position_embeddings', 'layer_norm_eps', 'type_vocab_size'])
        assert.is(saved[key], arch[key], key);
      const trained = result.model!;
      if (trained.kind === 'reranker') {
        const pairs = PASSAGES.map((p) => [QUERY, p] as [string, string]);
        const reloaded = await Reranker.load(out, { log: null });
        // Same float32 weights, same code: equal to the bit.
        assert.equal(await reloaded.score(pairs, { normalize: true }), await trained.score(pairs, { normalize: true }));
        reloaded.dispose();
      } else {
        const reloaded = await Embedder.load(out, { log: null });
        assert.equal(await reloaded.encode([QUERY, ...PASSAGES]), await trained.encode([QUERY, ...PASSAGES]));
        reloaded.dispose();
      }
      trained.dispose();

      // At true size the run needs far more than wasm's 4 GB: the plan sends it to cpu.
      const full = await trainingMemoryOf(
        loadTrainConfig(file, { overrides: { model_config: architecture(model), tokenizer_name_or_path: TOKENIZER } }),
      );
      assert.ok(full !== undefined && !fitsWasm(full) && full.parts.weights! > 2.2e9, JSON.stringify(full));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
}

const devNull = { write: () => true, isTTY: false } as unknown as NodeJS.WritableStream;

test.run();
