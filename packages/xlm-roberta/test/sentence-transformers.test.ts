/**
 * sentence-transformers folders of every layout load with their pooling, normalisation, max length and prompts
 * (the fixture's weights with each version's files, written as that version writes them: v2.0, v3.x, v6.0.1);
 * unsupported modules and settings are errors naming the file and the module; exports keep `max_seq_length` and
 * the tokenizer's `model_max_length` within the model's positions (issue 16, item 6). The Python libraries' own
 * reading of these folders is checked by test/referee. Tolerance: 1e-5 relative (README).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '../src/index.ts';
import { cases, EMBEDDER_DIR, maxRelativeError } from './fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'xlmr-st-'));
const KO_EN_32K = fileURLToPath(new URL('../../tokenizer/assets/ko-en-32k', import.meta.url));
const texts: string[] = cases.tokenization.cases.find((c: { name: string }) => c.name === 'singles').inputs;
const expected = cases.embedder_forward;

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
const V2_TYPES = {
  transformer: 'sentence_transformers.models.Transformer',
  pooling: 'sentence_transformers.models.Pooling',
  normalize: 'sentence_transformers.models.Normalize',
};
const V6_TYPES = {
  transformer: 'sentence_transformers.base.modules.transformer.Transformer',
  pooling: 'sentence_transformers.sentence_transformer.modules.pooling.Pooling',
  normalize: 'sentence_transformers.base.modules.normalize.Normalize',
};
const V6_TRANSFORMER = {
  transformer_task: 'feature-extraction',
  modality_config: { text: { method: 'forward', method_output_name: 'last_hidden_state' } },
  module_output_name: 'token_embeddings',
};
const v3Pooling = (mode: 'cls' | 'mean', includePrompt = true) => ({
  word_embedding_dimension: 32,
  pooling_mode_cls_token: mode === 'cls',
  pooling_mode_mean_tokens: mode === 'mean',
  pooling_mode_max_tokens: false,
  pooling_mode_mean_sqrt_len_tokens: false,
  pooling_mode_weightedmean_tokens: false,
  pooling_mode_lasttoken: false,
  include_prompt: includePrompt,
});

interface Layout {
  modules: { type: string; path: string; config?: unknown }[];
  sentenceBertConfig?: unknown;
  stConfig?: unknown;
  tokenizerMaxLength?: number;
}

let folders = 0;
/** The fixture's weights and tokenizer with the sentence-transformers files of `layout`. */
function folder(layout: Layout): string {
  const dir = join(work, `st-${++folders}`);
  mkdirSync(dir);
  for (const file of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'])
    cpSync(join(EMBEDDER_DIR, file), join(dir, file));
  writeFileSync(join(dir, 'modules.json'), json(layout.modules.map(({ type, path }, i) => ({ idx: i, name: String(i), path, type }))));
  for (const { path, config } of layout.modules) {
    if (path === '') continue;
    mkdirSync(join(dir, path));
    if (config !== undefined) writeFileSync(join(dir, path, 'config.json'), json(config));
  }
  if (layout.sentenceBertConfig !== undefined) writeFileSync(join(dir, 'sentence_bert_config.json'), json(layout.sentenceBertConfig));
  if (layout.stConfig !== undefined) writeFileSync(join(dir, 'config_sentence_transformers.json'), json(layout.stConfig));
  if (layout.tokenizerMaxLength !== undefined) {
    const tokenizerConfig = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    writeFileSync(join(dir, 'tokenizer_config.json'), json({ ...tokenizerConfig, model_max_length: layout.tokenizerMaxLength }));
  }
  return dir;
}

async function rejects(action: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await action();
  } catch (error) {
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
}

async function embeddingsError(embedder: Embedder, reference: number[][], options = {}): Promise<number> {
  const embeddings = await embedder.encode(texts, options);
  return maxRelativeError(
    embeddings.flatMap((e) => Array.from(e)),
    reference.flat(),
  );
}

test('v3 layout: all six pooling flags, include_prompt, prompts; mean pooling without Normalize', async () => {
  const dir = folder({
    modules: [
      { type: V2_TYPES.transformer, path: '' },
      { type: V2_TYPES.pooling, path: '1_Pooling', config: v3Pooling('mean') },
    ],
    sentenceBertConfig: { max_seq_length: 64, do_lower_case: false },
    stConfig: {
      __version__: { sentence_transformers: '3.0.1', transformers: '4.41.2', pytorch: '2.3.0' },
      prompts: { query: 'query: ' },
      default_prompt_name: null,
      similarity_fn_name: 'cosine',
    },
  });
  const embedder = await Embedder.load(dir, { log: null });
  assert.is(embedder.pooling, 'mean');
  assert.is(embedder.normalize, false);
  assert.is(embedder.maxSeqLength, 64);
  assert.equal(embedder.prompts, { query: 'query: ' });
  assert.is(embedder.defaultPromptName, null);
  assert.ok((await embeddingsError(embedder, expected.mean)) <= 1e-5); // 1e-5 relative
  embedder.dispose();
});

test('v6 layout: new module paths, pooling_mode, embedding_dimension, the length from tokenizer_config, query/document prompts', async () => {
  const warnings: string[] = [];
  const dir = folder({
    modules: [
      { type: V6_TYPES.transformer, path: '' },
      { type: V6_TYPES.pooling, path: '1_Pooling', config: { embedding_dimension: 32, pooling_mode: 'cls', include_prompt: true } },
      {
        type: V6_TYPES.normalize,
        path: '2_Normalize',
        config: { module_input_name: 'sentence_embedding', module_output_name: 'sentence_embedding' },
      },
    ],
    sentenceBertConfig: V6_TRANSFORMER,
    stConfig: {
      __version__: { pytorch: '2.13.0+cpu', sentence_transformers: '6.0.1', transformers: '5.18.0' },
      default_prompt_name: 'query',
      model_type: 'SentenceTransformer',
      prompts: { document: 'passage: ', query: 'query: ' },
      similarity_fn_name: 'cosine',
    },
    // What sentence-transformers 6 saves for this model: its cap, max_position_embeddings, 2 more than the positions.
    tokenizerMaxLength: 66,
  });
  const embedder = await Embedder.load(dir, { log: (line) => warnings.push(line) });
  assert.is(embedder.pooling, 'cls');
  assert.is(embedder.normalize, true);
  assert.is(embedder.maxSeqLength, 64);
  assert.ok(
    warnings.some((w) => w.includes('"model_max_length" is 66') && w.includes('using 64')),
    warnings.join('\n'),
  );
  assert.equal(embedder.prompts, { document: 'passage: ', query: 'query: ' });
  assert.is(embedder.defaultPromptName, 'query');
  // The default prompt applies unless a prefix or another prompt is given, as sentence-transformers' encode.
  const [byDefault] = await embedder.encode([texts[1]!]);
  const [explicit] = await embedder.encode([texts[1]!], { prefix: 'query: ' });
  const [document] = await embedder.encode([texts[1]!], { promptName: 'document' });
  const [passage] = await embedder.encode([`passage: ${texts[1]}`], { prefix: '' });
  assert.equal(Array.from(byDefault!), Array.from(explicit!));
  assert.equal(Array.from(document!), Array.from(passage!));
  assert.ok((await embeddingsError(embedder, expected.cls_normalized, { prefix: '' })) <= 1e-5); // 1e-5 relative
  await rejects(() => embedder.encode(['x'], { promptName: 'passage' }), /no prompt named "passage"; the embedder has "document", "query"/);
  const [empty] = await embedder.encode([texts[1]!], { prefix: '' });
  embedder.prompts = {};
  const [query] = await embedder.encode([texts[1]!], { promptName: 'query' });
  assert.equal(
    Array.from(query!),
    Array.from(empty!),
    '`query` and `document` exist, empty, where a folder has none (as sentence-transformers)',
  );
  embedder.prompts = { document: 'passage: ', query: 'query: ' };

  // Saved in the layout every version reads, the prompts and the default prompt with it.
  const out = join(work, 'v6-resaved');
  await embedder.save(out);
  embedder.dispose();
  assert.is(JSON.parse(readFileSync(join(out, 'modules.json'), 'utf8'))[1].type, 'sentence_transformers.models.Pooling');
  assert.equal(JSON.parse(readFileSync(join(out, 'sentence_bert_config.json'), 'utf8')), { max_seq_length: 64, do_lower_case: false });
  const stConfig = JSON.parse(readFileSync(join(out, 'config_sentence_transformers.json'), 'utf8'));
  assert.equal([stConfig.prompts, stConfig.default_prompt_name], [{ document: 'passage: ', query: 'query: ' }, 'query']);
  assert.is(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).model_max_length, 64);
  const again = await Embedder.load(out, { log: () => assert.unreachable('a kotune export needs no correction') });
  assert.equal([again.pooling, again.normalize, again.maxSeqLength, again.defaultPromptName], ['cls', true, 64, 'query']);
  again.dispose();
});

test('v6 pooling_mode as a one-element list; the max length from processor_kwargs before max_seq_length', async () => {
  const dir = folder({
    modules: [
      { type: V6_TYPES.transformer, path: '' },
      { type: V6_TYPES.pooling, path: '1_Pooling', config: { embedding_dimension: 32, pooling_mode: ['mean'] } },
    ],
    sentenceBertConfig: { ...V6_TRANSFORMER, processor_kwargs: { model_max_length: 16 }, max_seq_length: 64 },
  });
  const embedder = await Embedder.load(dir, { log: null });
  assert.equal([embedder.pooling, embedder.normalize, embedder.maxSeqLength], ['mean', false, 16]);
  embedder.dispose();
});

test('modules are recognised by class name wherever the package puts them, and a renamed Pooling by its config', async () => {
  const warnings: string[] = [];
  const dir = folder({
    modules: [
      { type: 'sentence_transformers.encoders.text.Transformer', path: '' },
      {
        type: 'sentence_transformers.encoders.pooling.TokenPooling',
        path: '1_Pooling',
        config: { embedding_dimension: 32, pooling_mode: 'mean' },
      },
      { type: 'sentence_transformers.encoders.Normalize', path: '2_Normalize' },
    ],
    sentenceBertConfig: V6_TRANSFORMER,
  });
  const embedder = await Embedder.load(dir, { log: (line) => warnings.push(line) });
  assert.equal([embedder.pooling, embedder.normalize], ['mean', true]);
  assert.ok((await embeddingsError(embedder, expected.mean_normalized)) <= 1e-5); // 1e-5 relative
  embedder.dispose();
});

test('unsupported modules, pooling modes and settings are errors naming the file and the module', async () => {
  const transformer = { type: V2_TYPES.transformer, path: '' };
  const pooling = { type: V2_TYPES.pooling, path: '1_Pooling', config: v3Pooling('cls') };
  const normalize = { type: V2_TYPES.normalize, path: '2_Normalize' };
  const load = (layout: Layout) => () => Embedder.load(folder(layout), { log: null });
  await rejects(
    load({ modules: [transformer, pooling, { type: 'sentence_transformers.models.Dense', path: '2_Dense', config: {} }, normalize] }),
    /modules\.json: module 2 "sentence_transformers\.models\.Dense" \(a Dense layer \(a linear projection of the sentence embedding\)\) is not supported; supported: Transformer, then Pooling \(CLS or mean\), then optionally Normalize/,
  );
  await rejects(
    load({
      modules: [
        transformer,
        pooling,
        { type: 'sentence_transformers.sentence_transformer.modules.layer_norm.LayerNorm', path: '2_LayerNorm', config: {} },
      ],
    }),
    /module 2 "sentence_transformers\.sentence_transformer\.modules\.layer_norm\.LayerNorm" \(a LayerNorm of the sentence embedding\) is not supported/,
  );
  await rejects(
    load({ modules: [transformer, { type: 'sentence_transformers.models.WeightedLayerPooling', path: '1_W', config: {} }, pooling] }),
    /module 1 "sentence_transformers\.models\.WeightedLayerPooling" \(pooling over several layers' token embeddings\) is not supported/,
  );
  await rejects(
    load({ modules: [transformer, { type: V6_TYPES.transformer, path: '1_Transformer' }, pooling] }),
    /module 1 ".*Transformer" is a second Transformer; supported/,
  );
  await rejects(
    load({ modules: [transformer, pooling, { type: 'modeling_custom.MyNormalize', path: '2_N' }] }),
    /module 2 "modeling_custom\.MyNormalize" is not supported/,
  );
  await rejects(load({ modules: [transformer] }), /needs a Transformer and a Pooling module/);
  await rejects(
    load({ modules: [transformer, { ...pooling, config: { ...v3Pooling('cls'), pooling_mode_max_tokens: true } }] }),
    /1_Pooling\/config\.json: pooling pooling_mode_cls_token \+ pooling_mode_max_tokens is not supported; supported: one of "cls", "mean"/,
  );
  await rejects(
    load({ modules: [transformer, { ...pooling, config: { embedding_dimension: 32, pooling_mode: 'lasttoken' } }] }),
    /pooling lasttoken is not supported/,
  );
  await rejects(
    load({ modules: [transformer, { ...pooling, config: v3Pooling('mean', false) }] }),
    /"include_prompt": false .* is not supported/,
  );
  await rejects(
    load({ modules: [transformer, { ...pooling, config: { embedding_dimension: 48, pooling_mode: 'cls' } }] }),
    /embedding dimension 48 is not the model's hidden_size 32/,
  );
  await rejects(
    load({ modules: [transformer, pooling], sentenceBertConfig: { ...V6_TRANSFORMER, transformer_task: 'sequence-classification' } }),
    /sentence_bert_config\.json: "transformer_task" is "sequence-classification"/,
  );
  await rejects(
    load({ modules: [transformer, pooling], stConfig: { model_type: 'CrossEncoder', prompts: {} } }),
    /config_sentence_transformers\.json: "model_type" is "CrossEncoder"; an embedder needs a SentenceTransformer; a CrossEncoder is a reranker: load it with Reranker/,
  );
  await rejects(
    load({ modules: [transformer, pooling], stConfig: { prompts: { query: 'q: ' }, default_prompt_name: 'document' } }),
    /"default_prompt_name" "document" is not one of the prompts \(query\)/,
  );
  await rejects(
    load({ modules: [transformer, pooling], sentenceBertConfig: { max_seq_length: 1.5 } }),
    /"max_seq_length" must be an integer ≥ 2, got 1\.5/,
  );
});

test('exports: model_max_length and max_seq_length within the positions (max_position_embeddings − pad_token_id − 1)', async () => {
  // The shipped tokenizer says 512; a model with 40 positions takes 38 tokens.
  const modelConfig = { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 4, intermediate_size: 64, max_position_embeddings: 40 };
  const embedder = Embedder.random(modelConfig, KO_EN_32K, 1, { prompts: { query: 'query: ', document: 'passage: ' } });
  assert.is(embedder.maxSeqLength, 38);
  await embedder.save(join(work, 'random-embedder'));
  embedder.dispose();
  const readJson = (path: string) => JSON.parse(readFileSync(join(work, path), 'utf8'));
  assert.is(readJson('random-embedder/tokenizer_config.json').model_max_length, 38);
  assert.is(readJson('random-embedder/sentence_bert_config.json').max_seq_length, 38);
  const source = JSON.parse(readFileSync(join(KO_EN_32K, 'tokenizer_config.json'), 'utf8'));
  assert.equal({ ...readJson('random-embedder/tokenizer_config.json'), model_max_length: 512 }, source, 'the other keys are kept');
  const reranker = Reranker.random(modelConfig, KO_EN_32K, 1);
  await reranker.save(join(work, 'random-reranker'));
  reranker.dispose();
  assert.is(readJson('random-reranker/tokenizer_config.json').model_max_length, 38);
  // A model with room for the tokenizer's 512 keeps its file byte for byte.
  const roomy = Reranker.random({ ...modelConfig, max_position_embeddings: 514 }, KO_EN_32K, 1);
  await roomy.save(join(work, 'roomy-reranker'));
  roomy.dispose();
  assert.ok(
    readFileSync(join(work, 'roomy-reranker/tokenizer_config.json')).equals(readFileSync(join(KO_EN_32K, 'tokenizer_config.json'))),
  );
});

test.run();
