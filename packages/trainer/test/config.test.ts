import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XLMR_CONFIG_FIELDS } from '@kotune/xlm-roberta/config';
import {
  CONFIG_KEYS,
  ConfigError,
  configHelp,
  everySteps,
  loadTrainConfig,
  lossKnobs,
  modelConfigHelp,
  parseOverrides,
  SCHEDULERS,
  type ConfigKey,
} from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-config-'));
mkdirSync(join(dir, 'sub'));
function config(name: string, value: unknown): string {
  const path = join(dir, 'sub', name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}
const minimal = { task: 'reranker', model_name_or_path: './model', train_data: 'train.jsonl' };

function throwsConfig(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a ConfigError matching ${pattern}`);
}

test("defaults are HF / FlagEmbedding's; paths resolve against the config folder; _ keys are comments", () => {
  const path = config('run-a.json', { ...minimal, _comment: 'ignored', _needs: ['anything'] });
  const c = loadTrainConfig(path, { cwd: '/somewhere' });
  assert.is(c.loss, 'group_ce');
  assert.is(c.learning_rate, 5e-5);
  assert.is(c.num_train_epochs, 3);
  assert.is(c.max_steps, -1);
  assert.is(c.per_device_train_batch_size, 8);
  assert.is(c.train_group_size, 8);
  assert.is(c.query_max_len, 32);
  assert.is(c.passage_max_len, 128);
  assert.is(c.max_grad_norm, 1);
  assert.is(c.seed, 42);
  assert.is(c.logging_steps, 500);
  assert.is(c.eval_steps, 500, 'eval_steps defaults to logging_steps');
  assert.is(c.batch_sampler, 'batch_sampler');
  assert.equal(c.train_data, [join(dir, 'sub', 'train.jsonl')]);
  assert.is(c.model_name_or_path, join(dir, 'sub', 'model'), 'a name starting with . is a path');
  assert.is(c.run_name, 'run-a');
  assert.is(c.output_dir, '/somewhere/checkpoints/run-a');
});

test('embedder defaults: mnrl, no_duplicates batches; a repo id stays a repo id', () => {
  const c = loadTrainConfig(
    config('emb.json', { task: 'embedder', model_name_or_path: 'BAAI/bge-m3', train_data: ['a.jsonl', 'b.jsonl'] }),
  );
  assert.is(c.loss, 'mnrl');
  assert.is(c.batch_sampler, 'no_duplicates');
  assert.is(c.model_name_or_path, 'BAAI/bge-m3');
  assert.is(c.train_data.length, 2);
  assert.equal(lossKnobs(c), { scale: 20, temperature: 0.02 });
  const t = loadTrainConfig(config('emb-t.json', { task: 'embedder', model_name_or_path: 'x/y', train_data: 'a', temperature: 0.05 }));
  assert.ok(Math.abs(lossKnobs(t).scale - 20) < 1e-12, 'scale = 1/temperature (float64, 1e-12)');
});

test('unknown keys and wrong types are errors naming the file; a near miss gets a did-you-mean, others the valid keys', () => {
  throwsConfig(
    () => loadTrainConfig(config('bad1.json', { ...minimal, learning_rat: 1e-5 })),
    /bad1\.json: unknown key "learning_rat" \(did you mean "learning_rate"\?\)$/,
  );
  throwsConfig(
    () => loadTrainConfig(config('bad1b.json', { ...minimal, 'Warmup-Steps': 10 })),
    /unknown key "Warmup-Steps" \(did you mean "warmup_steps"\?\)/,
  );
  throwsConfig(
    () => loadTrainConfig(config('bad1c.json', { ...minimal, epochs: 3 })),
    /bad1c\.json: unknown key "epochs"; valid keys: task, loss, .*num_train_epochs/,
  );
  throwsConfig(
    () => loadTrainConfig(config('bad2.json', { ...minimal, learning_rate: '1e-5' })),
    /bad2\.json: learning_rate must be a number, got string "1e-5"/,
  );
  throwsConfig(() => loadTrainConfig(config('bad3.json', { ...minimal, per_device_train_batch_size: 2.5 })), /must be an integer/);
  throwsConfig(
    () => loadTrainConfig(config('bad4.json', { ...minimal, lr_scheduler_type: 'poly' })),
    /lr_scheduler_type must be one of linear \| constant \| constant_with_warmup \| cosine/,
  );
  throwsConfig(() => loadTrainConfig(config('bad5.json', { ...minimal, gradient_accumulation_steps: 0 })), /must be >= 1/);
  throwsConfig(
    () => loadTrainConfig(config('bad6.json', '{"task": "reranker",}')),
    /bad6\.json:1:21: not valid JSON \(Expected double-quoted property name\)$/,
  );
  throwsConfig(
    () => loadTrainConfig(config('bad6b.json', '{\n  "task": "reranker",\n  "seed": 4 2\n}')),
    /bad6b\.json:3:13: not valid JSON/,
  );
  throwsConfig(
    () => loadTrainConfig(config('bad6c.json', '{"task": "reranker"')),
    /bad6c\.json:1:20: not valid JSON \(Expected ',' or '}' after property value\)$/,
  );
  throwsConfig(() => loadTrainConfig(config('bad6e.json', '')), /bad6e\.json:1:1: not valid JSON \(unexpected end of the text\)$/);
  writeFileSync(join(dir, 'sub', 'bad6d.json'), Buffer.from([...Buffer.from('{"run_name": "'), 0xc3, 0x28, ...Buffer.from('"}')]));
  throwsConfig(() => loadTrainConfig(join(dir, 'sub', 'bad6d.json')), /bad6d\.json: not valid UTF-8 text$/);
  throwsConfig(() => loadTrainConfig(config('bad7.json', [1, 2])), /expected a JSON object/);
  throwsConfig(() => loadTrainConfig(join(dir, 'missing.json')), /missing\.json: cannot read the config: no such file or folder$/);
  throwsConfig(() => loadTrainConfig(join(dir, 'sub')), /sub: cannot read the config: is a folder, not a file$/);
});

test('contradictions: loss for the other task, missing model, scale with temperature', () => {
  throwsConfig(
    () => loadTrainConfig(config('c1.json', { ...minimal, loss: 'mnrl' })),
    /loss mnrl is for embedders; a reranker takes group_ce \| bce/,
  );
  throwsConfig(() => loadTrainConfig(config('c2.json', { task: 'reranker', train_data: 'a' })), /model_name_or_path is required/);
  throwsConfig(
    () =>
      loadTrainConfig(config('c3.json', { task: 'reranker', train_data: 'a', model_config: { hidden_size: 8, num_attention_heads: 2 } })),
    /c3\.json: model_config needs tokenizer_name_or_path$/,
  );
  throwsConfig(
    () => loadTrainConfig(config('c4.json', { task: 'embedder', model_name_or_path: 'm', train_data: 'a', scale: 20, temperature: 0.05 })),
    /scale or temperature, not both/,
  );
  throwsConfig(() => loadTrainConfig(config('c5.json', { ...minimal, train_group_size: 1 })), /group_ce needs train_group_size >= 2/);
  throwsConfig(() => loadTrainConfig(config('c6.json', { model_name_or_path: 'm', train_data: 'a' })), /task is required/);
  throwsConfig(
    () => loadTrainConfig(config('c7.json', { ...minimal, overwrite_output_dir: true, resume_from_checkpoint: true })),
    /c7\.json: give resume_from_checkpoint \(--resume\) or overwrite_output_dir, not both$/,
  );
});

test("command-line overrides are parsed to the key's type and win over the file", () => {
  const overrides = parseOverrides([
    '--learning_rate',
    '1e-5',
    '--shuffle',
    'false',
    '--seed=7',
    '--skip_bad_lines',
    '--train_data',
    'x.jsonl',
    '--train_data',
    'y.jsonl',
    '--save_total_limit',
    'null',
    '--model_config',
    '{"hidden_size": 16, "num_attention_heads": 4}',
    '--model-name-or-path',
    'null',
    '--tokenizer_name_or_path',
    'tok',
  ]);
  assert.equal(overrides, {
    learning_rate: 1e-5,
    shuffle: false,
    seed: 7,
    skip_bad_lines: true,
    train_data: ['x.jsonl', 'y.jsonl'],
    save_total_limit: null,
    model_config: { hidden_size: 16, num_attention_heads: 4 },
    model_name_or_path: null,
    tokenizer_name_or_path: 'tok',
  });
  const c = loadTrainConfig(config('o.json', minimal), { overrides, cwd: '/cwd' });
  assert.is(c.learning_rate, 1e-5);
  assert.is(c.shuffle, false);
  assert.equal(c.train_data, ['/cwd/x.jsonl', '/cwd/y.jsonl'], 'command-line paths resolve against the working directory');
  assert.equal(c.model_config, { hidden_size: 16, num_attention_heads: 4 });
  throwsConfig(
    () => parseOverrides(['--learning_rat', '1']),
    /command line: unknown key --learning_rat \(did you mean --learning_rate\?\)/,
  );
  throwsConfig(() => parseOverrides(['--lr', '1']), /command line: unknown key --lr; valid keys/);
  throwsConfig(
    () => loadTrainConfig(config('o2.json', minimal), { overrides: parseOverrides(['--seed', 'seven']) }),
    /command line: seed must be an integer, got string "seven"/,
  );
  throwsConfig(() => parseOverrides(['--seed']), /--seed needs a value/);
  throwsConfig(() => parseOverrides(['stray']), /unexpected argument "stray"/);
});

test('a config can come from the command line alone; resume takes true or a path', () => {
  const c = loadTrainConfig(null, {
    cwd: '/w',
    overrides: parseOverrides([
      '--task',
      'embedder',
      '--model_name_or_path',
      'a/b',
      '--train_data',
      'd.jsonl',
      '--resume_from_checkpoint',
      'out/checkpoint-4',
    ]),
  });
  assert.is(c.run_name, 'run');
  assert.is(c.resume_from_checkpoint, '/w/out/checkpoint-4');
  const r = loadTrainConfig(null, {
    cwd: '/w',
    overrides: parseOverrides(['--task', 'embedder', '--model_name_or_path', 'a/b', '--train_data', 'd.jsonl', '--resume_from_checkpoint']),
  });
  assert.is(r.resume_from_checkpoint, true);
});

test('every key has a help line; fractional step intervals are a share of the total (HF)', () => {
  for (const [key, spec] of Object.entries(CONFIG_KEYS)) assert.ok(spec.help.length > 5, key);
  assert.is(everySteps(0.1, 95), 10);
  assert.is(everySteps(50, 95), 50);
});

test('the schema is the one definition: loaded defaults are its defaults, --help lists every key with its choices and default', () => {
  const c = loadTrainConfig(config('schema.json', minimal), { cwd: '/w' });
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [ConfigKey, { default?: unknown; path?: string }][]) {
    const fallback = spec.default;
    if (fallback === undefined || (fallback !== null && typeof fallback === 'object' && !Array.isArray(fallback)) || key in minimal)
      continue;
    assert.equal(c[key], fallback, `${key} takes the schema's default`);
  }
  const help = configHelp().split('\n');
  assert.equal(
    help.map((line) => line.trim().split(/\s+/)[0]),
    Object.keys(CONFIG_KEYS),
    'one line per key, in schema order',
  );
  const line = (key: string) => help.find((l) => l.trim().startsWith(`${key} `))!;
  assert.match(line('lr_scheduler_type'), `: ${SCHEDULERS.join(' | ')} ["linear"]`);
  assert.match(line('loss'), ': group_ce | bce | mnrl | mnrl_symmetric | infonce [default: group_ce for rerankers, mnrl for embedders]');
  assert.match(line('sentence_pooling_method'), ': cls | mean');
  assert.match(line('task'), '(required)');
  assert.match(line('learning_rate'), '[0.00005]');
  const modelHelp = modelConfigHelp()
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0]);
  assert.equal(
    modelHelp,
    Object.values(XLMR_CONFIG_FIELDS).map((f) => f.key),
    'model_config keys from the XLM-R config table',
  );
  assert.match(modelConfigHelp(), /hidden_size +width of every layer, a multiple of num_attention_heads \[768\]/);
});

test('every problem is reported at once, each naming the file and key; model_config fields are checked by the XLM-R schema', () => {
  try {
    loadTrainConfig(
      config('many.json', {
        model_name_or_path: 'm',
        train_data: 'a',
        learning_rate: -1,
        shuffle: 'yes',
        lr_scheduler_type: 'poly',
        seed_: 1,
      }),
    );
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ConfigError);
    const { problems } = error as ConfigError;
    assert.is(problems.length, 5, problems.join('\n'));
    assert.match(problems[0]!, /many\.json: learning_rate must be a number, got number -1 \(must be > 0\)/);
    assert.match(problems[1]!, /many\.json: shuffle must be true or false, got string "yes"/);
    assert.match(problems[2]!, /many\.json: lr_scheduler_type must be one of linear/);
    assert.match(problems[3]!, /many\.json: unknown key "seed_"/);
    assert.match(problems[4]!, /many\.json: task is required \(reranker \| embedder\)/);
  }
  const fresh = { task: 'reranker', train_data: 'a', tokenizer_name_or_path: 'tok' };
  throwsConfig(
    () => loadTrainConfig(config('mc1.json', { ...fresh, model_config: { hidden_size: '128', num_hidden_layers: 0 } })),
    /mc1\.json: model_config: "hidden_size" must be a number, got "128"\n.*mc1\.json: model_config: "num_hidden_layers" must be >= 1, got 0/,
  );
  throwsConfig(
    () => loadTrainConfig(config('mc2.json', { ...fresh, model_config: { hidden_dropout_prob: 1.5 } })),
    /model_config: "hidden_dropout_prob" must be in \[0, 1\), got 1\.5/,
  );
  throwsConfig(
    () => loadTrainConfig(config('mc3.json', { ...fresh, model_config: [128] })),
    /model_config must be an object of config\.json keys or the path of a config\.json file or null, got an array/,
  );
  const ok = loadTrainConfig(
    config('mc4.json', { ...fresh, model_config: { hidden_size: 64, num_attention_heads: 4, torch_dtype: 'float32' } }),
  );
  assert.equal(ok.model_config, { hidden_size: 64, num_attention_heads: 4, torch_dtype: 'float32' }, 'other config.json keys pass through');
});

test('model_config: an unknown key gets a did-you-mean, the sizes must go together, the positions must hold the longest input', () => {
  const fresh = { task: 'reranker', train_data: 'a', tokenizer_name_or_path: 'tok' };
  throwsConfig(
    () => loadTrainConfig(config('mk1.json', { ...fresh, model_config: { hiden_size: 128 } })),
    /^\S*mk1\.json: model_config: unknown key "hiden_size" \(did you mean "hidden_size"\?\)$/,
  );
  throwsConfig(
    () => loadTrainConfig(config('mk2.json', { ...fresh, model_config: { width: 128 } })),
    /mk2\.json: model_config: unknown key "width"; XLM-RoBERTa config keys: vocab_size, hidden_size, .*, use_cache$/,
  );
  throwsConfig(
    () => loadTrainConfig(config('mk3.json', { ...fresh, model_config: { hidden_size: 130, num_attention_heads: 4 } })),
    /^\S*mk3\.json: model_config: hidden_size 130 is not a multiple of num_attention_heads 4$/,
  );
  // XLM-R positions start after pad_token_id (1): 64 rows hold 62 tokens; a reranker pair holds query + passage tokens.
  throwsConfig(
    () => loadTrainConfig(config('mk4.json', { ...fresh, model_config: { max_position_embeddings: 64 } })),
    /^\S*mk4\.json: model_config: max_position_embeddings 64 leaves 62 positions for tokens, but a training pair holds query_max_len 32 \+ passage_max_len 128 = 160 tokens; raise max_position_embeddings or lower the lengths$/,
  );
  assert.ok(loadTrainConfig(config('mk5.json', { ...fresh, model_config: { max_position_embeddings: 162 } })), '160 tokens + 2 fit in 162');
  throwsConfig(
    () => loadTrainConfig(config('mk6.json', { ...fresh, model_config: { max_position_embeddings: 162 }, passage_max_len: 129 })),
    /161 tokens/,
  );
  // An embedder encodes queries and passages apart: the longer of the two must fit.
  const embedder = { ...fresh, task: 'embedder', model_config: { max_position_embeddings: 130 } };
  assert.ok(loadTrainConfig(config('mk7.json', embedder)));
  throwsConfig(
    () => loadTrainConfig(config('mk8.json', { ...embedder, passage_max_len: 256 })),
    /max_position_embeddings 130 leaves 128 positions for tokens, but the longest text holds 256 tokens \(query_max_len 32, passage_max_len 256\)/,
  );
});

test("model_config may name a config.json file (its _ keys are comments); given on the command line it replaces the file's model, keeping its tokenizer", () => {
  const arch = config('arch.json', { _comment: 'an architecture', hidden_size: 64, num_attention_heads: 4, max_position_embeddings: 514 });
  const fromFile = loadTrainConfig(
    config('mf1.json', { task: 'reranker', train_data: 'a', tokenizer_name_or_path: 'tok', model_config: 'arch.json' }),
  );
  assert.equal(fromFile.model_config, { hidden_size: 64, num_attention_heads: 4, max_position_embeddings: 514 });
  const recipe = config('mf2.json', { ...minimal, model_name_or_path: 'BAAI/bge-reranker-large' });
  const fresh = loadTrainConfig(recipe, { overrides: parseOverrides(['--model_config', arch]) });
  assert.is(fresh.model_name_or_path, null);
  assert.is(fresh.tokenizer_name_or_path, 'BAAI/bge-reranker-large', "the replaced model's tokenizer");
  assert.equal(fresh.model_config!.hidden_size, 64);
  const own = loadTrainConfig(recipe, { overrides: parseOverrides(['--model_config', arch, '--tokenizer_name_or_path', 'tok']) });
  assert.is(own.tokenizer_name_or_path, 'tok');
  // And the other way round: a model on the command line replaces the file's fresh one.
  assert.is(
    loadTrainConfig(config('mf3.json', { task: 'reranker', train_data: 'a', tokenizer_name_or_path: 'tok', model_config: 'arch.json' }), {
      overrides: parseOverrides(['--model_name_or_path', 'BAAI/bge-m3']),
    }).model_config,
    null,
  );
  throwsConfig(
    () => loadTrainConfig(recipe, { overrides: parseOverrides(['--model_config', join(dir, 'missing.json')]) }),
    /^command line: model_config: \S*missing\.json: cannot read the config: /,
  );
  const badArch = config('bad-arch.json', { hiden_size: 64 });
  throwsConfig(
    () => loadTrainConfig(recipe, { overrides: parseOverrides(['--model_config', badArch]) }),
    /^\S*bad-arch\.json: model_config: unknown key "hiden_size" \(did you mean "hidden_size"\?\)$/,
  );
});

test("null stands for a derived default (HF's None): loss, eval_steps, batch_sampler, output_dir", () => {
  const c = loadTrainConfig(
    config('nulls.json', { ...minimal, loss: null, eval_steps: null, batch_sampler: null, output_dir: null, logging_steps: 7 }),
    { cwd: '/w' },
  );
  assert.equal([c.loss, c.eval_steps, c.batch_sampler, c.output_dir], ['group_ce', 7, 'batch_sampler', '/w/checkpoints/nulls']);
  throwsConfig(
    () => loadTrainConfig(config('nulls2.json', { ...minimal, learning_rate: null })),
    /learning_rate must be a number, got null/,
  );
});

test.run();
