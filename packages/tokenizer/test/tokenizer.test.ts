import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as RustTokenizer, type TruncationStrategy } from 'tokenizers';
import { XLMRTokenizer } from '../src/index.ts';

const root = new URL('../../../', import.meta.url).pathname;
const assetDir = new URL('../assets/ko-en-32k/', import.meta.url).pathname;
const fixtureDir = join(root, 'test/fixtures/xlmr-tiny');
const cases = JSON.parse(readFileSync(join(fixtureDir, 'cases.json'), 'utf8')).tokenization.cases as FixtureCase[];

interface FixtureCase {
  name: string;
  kind: 'single' | 'pair';
  inputs: (string | [string, string])[];
  max_length: number;
  truncation: 'longest_first' | 'only_second' | null;
  padding: 'longest' | 'max_length' | null;
  pad_to?: number;
  input_ids?: number[][];
  attention_mask?: number[][];
  error?: string;
}

const ours = XLMRTokenizer.fromFolder(fixtureDir);
const shipped = XLMRTokenizer.fromFolder(assetDir);
const rust = RustTokenizer.fromFile(join(assetDir, 'tokenizer.json'));

function tsv(file: string): [string, string][] {
  return readFileSync(new URL(`./data/${file}`, import.meta.url), 'utf8')
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((line) => line.split('\t') as [string, string]);
}
const pairs = [...tsv('chatbot/chatbot-qa.tsv'), ...tsv('kornli/kornli-xnli-test.tsv')];

/** Rust ids for many inputs; the binding runs each `encode` on the libuv pool, so a few hundred go at once. */
async function rustIds(tokenizer: RustTokenizer, inputs: [string, string | null][]): Promise<(number[] | Error)[]> {
  const out: (number[] | Error)[] = [];
  for (let i = 0; i < inputs.length; i += 256) {
    const chunk = inputs.slice(i, i + 256).map(([a, b]) =>
      tokenizer.encode(a, b).then(
        (e) => e.getIds(),
        (error: Error) => error,
      ),
    );
    out.push(...(await Promise.all(chunk)));
  }
  return out;
}

test('fixture cases: ids, masks and the only_second error match tokenizers 0.23.2 exactly', () => {
  for (const c of cases) {
    // 'max_length' padding pads to pad_to; the fixture texts are shorter than pad_to, so it can be the max length.
    const maxLength = c.padding === 'max_length' ? c.pad_to! : c.max_length;
    const padding = c.padding ?? false;
    const run = () =>
      c.kind === 'single'
        ? ours.encodeBatch(c.inputs as string[], { maxLength, truncation: c.truncation !== null, padding })
        : ours.encodePairs(c.inputs as [string, string][], { maxLength, truncation: c.truncation ?? false, padding });
    if (c.error) {
      assert.throws(run, (e: Error) => e.message === c.error, c.name);
      continue;
    }
    const encoded = run();
    assert.equal(encoded.inputIds, c.input_ids, `${c.name}: input_ids`);
    assert.equal(encoded.attentionMask, c.attention_mask, `${c.name}: attention_mask`);
    if (c.padding === 'max_length') {
      const unpadded =
        c.kind === 'single'
          ? ours.encodeBatch(c.inputs as string[], { padding: false })
          : ours.encodePairs(c.inputs as [string, string][], { padding: false });
      assert.ok(
        unpadded.inputIds.every((ids) => ids.length <= c.max_length),
        `${c.name}: not cut by pad_to`,
      );
    }
  }
});

test('fields, modelMaxLength and vocabulary size come from the folder', () => {
  assert.equal([ours.bosId, ours.padId, ours.eosId, ours.unkId], [0, 1, 2, 3]);
  assert.is(ours.vocabSize, 32002);
  assert.is(ours.vocabSize, rust.getVocabSize(true));
  assert.is(ours.modelMaxLength, 512);
  assert.equal(ours.tokenize('안녕하세요, 반갑습니다.'), [20016, 7, 9585, 406, 4]);
});

test('≥ 99.9% of 20,000 Korean lines and 10,000 pairs get the Rust ids (differences listed by kind)', async () => {
  const lines = pairs.flat();
  const kinds: Record<string, (text: string, i: number) => string> = {
    'as written': (t) => t,
    'NFD Hangul (decomposed jamo)': (t) => t.normalize('NFD'),
    'compatibility jamo typed mid-word': (t, i) => {
      const chars = [...t];
      chars.splice((i * 7) % (chars.length + 1), 0, 'ㄱㅏㅋㅠ'.slice(i % 3, (i % 3) + 2));
      return chars.join('');
    },
    'emoji ZWJ / modifier / flag sequences': (t, i) => t + [' 👍🏽', '👨‍👩‍👧', ' ❤️', '🇰🇷', ' ㅋㅋ😂'][i % 5],
    'doubled and no-break spaces, CRLF': (t) => t.replace(/ /g, (_, at: number) => (at % 3 ? '  ' : at % 2 ? '\u00a0' : '\r\n')),
  };
  const report: string[] = [];
  for (const [kind, perturb] of Object.entries(kinds)) {
    // Every line as written; a 2,000-line sample of each perturbation keeps the test fast.
    const sample = kind === 'as written' ? lines : lines.filter((_, i) => i % 10 === 0);
    const texts = sample.map(perturb);
    const expected = await rustIds(
      rust,
      texts.map((t) => [t, null]),
    );
    const got = texts.map((t) => ours.encodeBatch([t], { truncation: false, padding: false }).inputIds[0]!);
    const differing = texts.filter((_, i) => (expected[i] as number[]).join() !== got[i]!.join());
    report.push(
      `${kind}: ${texts.length - differing.length}/${texts.length}${differing.length ? ` e.g. ${JSON.stringify(differing.slice(0, 3))}` : ''}`,
    );
    assert.ok((texts.length - differing.length) / texts.length >= 0.999, report.at(-1));
  }
  const expectedPairs = await rustIds(rust, pairs);
  const gotPairs = ours.encodePairs(pairs, { truncation: false, padding: false }).inputIds;
  const samePairs = gotPairs.filter((ids, i) => ids.join() === (expectedPairs[i] as number[]).join()).length;
  report.push(`pairs: ${samePairs}/${pairs.length}`);
  console.log(`  agreement with tokenizers 0.23.2:\n    ${report.join('\n    ')}`);
  assert.ok(samePairs / pairs.length >= 0.999);
  assert.ok(lines.length >= 10_000 && pairs.length >= 10_000);
});

test('edge inputs match Rust: empty and blank texts, special tokens typed in the text, grapheme-cluster quirks', async () => {
  const texts = [
    '',
    ' ',
    '   ',
    'a  ',
    ' a',
    '  a  b  ',
    '\t',
    '\r\n',
    'a\r\nb',
    '<s>',
    '<s><s>',
    'x</s>y',
    'a<mask>b',
    'a <mask> b',
    ' <pad> ',
    '<unk>',
    '😀😀 😀',
    'ㄱㅏ나다',
    '안녕하세요'.normalize('NFD'),
    '가\u11a8',
    '👍🏽 좋아요 👨‍👩‍👧',
    'ｅ\u0301',
    'e\u0301',
    '#\ufe0f',
    'a\u00a0\u00a0b',
    '\u3000\u3000x',
    'x\u200b',
    'ｆｕｌｌ ㈜ ①',
    '\u0915\u094d\u0937',
  ];
  const expected = await rustIds(
    rust,
    texts.map((t) => [t, null]),
  );
  texts.forEach((t, i) => assert.equal(ours.encodeBatch([t], { padding: false }).inputIds[0], expected[i], JSON.stringify(t)));
});

test('truncation of 10,000 pairs matches Rust: longest_first and only_second (errors included) at 32 tokens', async () => {
  for (const [strategy, rustStrategy] of [
    ['longest_first', 'LongestFirst'],
    ['only_second', 'OnlySecond'],
  ] as const) {
    const truncating = RustTokenizer.fromFile(join(assetDir, 'tokenizer.json'));
    truncating.setTruncation(32, { strategy: rustStrategy as TruncationStrategy });
    const expected = await rustIds(truncating, pairs);
    let errors = 0;
    for (let i = 0; i < pairs.length; i++) {
      const want = expected[i]!;
      if (want instanceof Error) {
        errors++;
        assert.throws(
          () => ours.encodePairs([pairs[i]!], { maxLength: 32, truncation: strategy }),
          (e: Error) => want.message.includes(e.message),
        );
      } else {
        assert.equal(
          ours.encodePairs([pairs[i]!], { maxLength: 32, truncation: strategy, padding: false }).inputIds[0],
          want,
          `${strategy} pair ${i}`,
        );
      }
    }
    if (strategy === 'only_second') assert.ok(errors > 0, 'the sample exercises the only_second error');
  }
});

test('truncated singles match Rust at max_length 16, padding masks the pads', async () => {
  const truncating = RustTokenizer.fromFile(join(assetDir, 'tokenizer.json'));
  truncating.setTruncation(16);
  const texts = pairs.slice(0, 2000).map(([, b]) => b);
  const expected = (await rustIds(
    truncating,
    texts.map((t) => [t, null]),
  )) as number[][];
  const { inputIds, attentionMask } = ours.encodeBatch(texts, { maxLength: 16, padding: 'max_length' });
  for (let i = 0; i < texts.length; i++) {
    const n = expected[i]!.length;
    assert.equal(inputIds[i]!.slice(0, n), expected[i]);
    assert.ok(inputIds[i]!.slice(n).every((id) => id === ours.padId) && inputIds[i]!.length === 16);
    assert.equal(attentionMask[i], [...Array(n).fill(1), ...Array(16 - n).fill(0)]);
  }
});

test('prefix is prepended to the text before tokenizing (sentence-transformers prompts)', () => {
  const texts = ['대한민국의 수도는 어디인가요?', ''];
  assert.equal(ours.encodeBatch(texts, { prefix: 'query: ' }), ours.encodeBatch(texts.map((t) => `query: ${t}`)));
  assert.not.equal(ours.encodeBatch(texts, { prefix: 'query: ' }).inputIds[0], ours.encodeBatch(texts).inputIds[0]);
});

test('encodeRerankerPairs follows FlagEmbedding: inference (compute_score) and training (create_one_example)', () => {
  const query = pairs[6000]![0].repeat(8); // long enough to be cut
  const passage = pairs
    .slice(6001, 6010)
    .map(([p]) => p)
    .join(' ');
  const q = ours.tokenize(query);
  const p = ours.tokenize(passage);
  const pair = (a: number[], b: number[]) => [0, ...a, 2, 2, ...b, 2]; // 4 special tokens
  // Inference, max_length 64: query cut to 64*3//4 = 48, passage to 64, then only_second to 64.
  assert.ok(q.length > 48 && p.length > 64);
  const inference = ours.encodeRerankerPairs([[query, passage]], { maxLength: 64 }).inputIds[0]!;
  assert.equal(inference, pair(q.slice(0, 48), p.slice(0, 64 - 4 - 48)));
  // longest_first would have split the budget evenly instead.
  assert.not.equal(inference, ours.encodePairs([[query, passage]], { maxLength: 64 }).inputIds[0]);
  // Training, query_max_len 16, passage_max_len 48: query cut to 16 + 48//4 = 28, passage to 48 + 16//2 = 56,
  // then only_second to 64.
  const training = ours.encodeRerankerPairs([[query, passage]], { queryMaxLen: 16, passageMaxLen: 48 }).inputIds[0]!;
  assert.equal(training, pair(q.slice(0, 28), p.slice(0, 64 - 4 - 28)));
  // Short pairs are untouched; the batch pads to its longest.
  const short = ours.encodeRerankerPairs(
    [
      ['서울', '수도'],
      ['대한민국의 수도는?', '서울은 수도다.'],
    ],
    { maxLength: 64 },
  );
  assert.equal(
    short.inputIds[0]!.filter((_, i) => short.attentionMask[0]![i]),
    ours.encodePairs([['서울', '수도']]).inputIds[0],
  );
  assert.is(short.inputIds[0]!.length, short.inputIds[1]!.length);
  assert.throws(() => ours.encodeRerankerPairs([[query, passage]], { maxLength: 16, queryMaxLen: 14 }), /no room for the passage/);
  assert.throws(() => ours.encodeRerankerPairs([[query, passage]], { maxLength: 64, passageMaxLen: 48 }), /not both/);
});

test('padding and length errors are explicit', () => {
  const long = pairs[6000]![1];
  assert.throws(
    () => ours.encodeBatch([long], { maxLength: 8, truncation: false, padding: 'max_length' }),
    /sequence 0 has \d+ tokens > maxLength 8/,
  );
  assert.throws(() => ours.encodeBatch(['a'], { maxLength: 1 }), /cannot hold the 2 special tokens/);
  const ragged = ours.encodeBatch(['짧다', long], { padding: false });
  assert.ok(ragged.inputIds[0]!.length < ragged.inputIds[1]!.length);
});

test('clear errors name the file for a missing or malformed tokenizer folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-tokenizer-'));
  try {
    assert.throws(
      () => XLMRTokenizer.fromFolder(dir),
      (e: Error) => e.message.startsWith(join(dir, 'tokenizer.json')) && /not found/.test(e.message),
    );
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    assert.throws(
      () => XLMRTokenizer.fromFolder(dir),
      (e: Error) => e.message.startsWith(join(dir, 'tokenizer.json')) && /malformed JSON/.test(e.message),
    );
    const json = JSON.parse(readFileSync(join(assetDir, 'tokenizer.json'), 'utf8'));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...json, model: { type: 'BPE', vocab: {}, merges: [] } }));
    assert.throws(() => XLMRTokenizer.fromFolder(dir), /tokenizer\.json: model\.type is "BPE"/);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    writeFileSync(join(dir, 'tokenizer_config.json'), '{,}');
    assert.throws(
      () => XLMRTokenizer.fromFolder(dir),
      (e: Error) => e.message.startsWith(join(dir, 'tokenizer_config.json')),
    );
    const charsmap = json.normalizer.normalizers[0];
    charsmap.precompiled_charsmap = Buffer.from([255, 255, 0, 0, 1, 2]).toString('base64');
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    rmSync(join(dir, 'tokenizer_config.json'));
    assert.throws(() => XLMRTokenizer.fromFolder(dir), /tokenizer\.json: normalizer\.precompiled_charsmap declares/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without tokenizer_config.json modelMaxLength is unbounded; copyFilesTo copies the files present', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-tokenizer-'));
  try {
    mkdirSync(join(dir, 'src'));
    copyFileSync(join(assetDir, 'tokenizer.json'), join(dir, 'src', 'tokenizer.json'));
    const bare = XLMRTokenizer.fromFolder(join(dir, 'src'));
    assert.is(bare.modelMaxLength, Infinity);
    assert.equal(bare.tokenize('한국어 문장'), shipped.tokenize('한국어 문장'));
    shipped.copyFilesTo(join(dir, 'out'));
    assert.equal(readdirSync(join(dir, 'out')).sort(), ['sentencepiece.bpe.model', 'tokenizer.json', 'tokenizer_config.json']);
    for (const name of readdirSync(join(dir, 'out')))
      assert.ok(readFileSync(join(dir, 'out', name)).equals(readFileSync(join(assetDir, name))), name);
    ours.copyFilesTo(join(dir, 'out2'));
    assert.ok(readdirSync(join(dir, 'out2')).includes('special_tokens_map.json') === false); // fixture root has none
    XLMRTokenizer.fromFolder(join(fixtureDir, 'reranker')).copyFilesTo(join(dir, 'out3'));
    assert.ok(readdirSync(join(dir, 'out3')).includes('special_tokens_map.json'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
