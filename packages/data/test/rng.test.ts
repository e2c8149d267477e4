import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng } from '../src/index.ts';

test('xoshiro128** matches the reference C implementation from state [1,2,3,4]', () => {
  // Output of Vigna's xoshiro128starstar.c next() seeded with s = {1, 2, 3, 4}.
  const rng = Rng.fromState([1, 2, 3, 4]);
  assert.equal(
    Array.from({ length: 6 }, () => rng.nextUint32()),
    [11520, 0, 5927040, 70819200, 2031721883, 1637235492],
  );
});

test('same seed, same stream; other seeds and streams differ', () => {
  const draw = (rng: Rng) => Array.from({ length: 8 }, () => rng.nextUint32());
  assert.equal(draw(new Rng(42)), draw(new Rng(42)));
  assert.not.equal(draw(new Rng(42)), draw(new Rng(43)));
  assert.not.equal(draw(new Rng(42, 0)), draw(new Rng(42, 1)));
  assert.not.equal(draw(new Rng(2 ** 40)), draw(new Rng(0)));
});

test('state() / fromState() resume the same sequence, through JSON', () => {
  const rng = new Rng(7);
  for (let i = 0; i < 100; i++) rng.next();
  const saved = JSON.parse(JSON.stringify(rng.state()));
  const expected = Array.from({ length: 20 }, () => rng.next());
  const resumed = Rng.fromState(saved);
  assert.equal(
    Array.from({ length: 20 }, () => resumed.next()),
    expected,
  );
  assert.throws(() => Rng.fromState([0, 0, 0, 0]), /all zeros/);
  assert.throws(() => Rng.fromState([1, 2, 3] as never), /four unsigned/);
});

test('next() in [0,1) with mean 1/2; int(n) in range and roughly uniform', () => {
  const rng = new Rng(1);
  let sum = 0;
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    const x = rng.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  // Standard error of the mean is 1/sqrt(12 n) ≈ 0.00065; allow 5 standard errors.
  assert.ok(Math.abs(sum / n - 0.5) < 0.0033, `mean ${sum / n}`);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 70_000; i++) counts[rng.int(7)]++;
  // Chi-square with 6 degrees of freedom: 22.46 is the 0.999 quantile.
  const chi2 = counts.reduce((acc, c) => acc + (c - 10_000) ** 2 / 10_000, 0);
  assert.ok(chi2 < 22.46, `chi2 ${chi2} counts ${counts}`);
  assert.throws(() => rng.int(0), /integer 1\.\.2\^32/);
});

test('shuffle is a permutation and every position is reachable', () => {
  const rng = new Rng(3);
  const firsts = new Set<number>();
  for (let t = 0; t < 200; t++) {
    const a = rng.shuffle([0, 1, 2, 3, 4, 5]);
    assert.equal([...a].sort(), [0, 1, 2, 3, 4, 5]);
    firsts.add(a[0]);
  }
  assert.is(firsts.size, 6);
});

test('sample draws distinct positions without replacement and leaves the input alone', () => {
  const rng = new Rng(5);
  const items = ['a', 'b', 'c', 'd', 'e'];
  for (let t = 0; t < 100; t++) {
    const s = rng.sample(items, 3);
    assert.is(new Set(s).size, 3);
    assert.ok(s.every((x) => items.includes(x)));
  }
  assert.equal(items, ['a', 'b', 'c', 'd', 'e']);
  assert.equal(rng.sample(items, 5).sort(), items);
  assert.throws(() => rng.sample(items, 6), /cannot sample 6 items without replacement from 5/);
});

test.run();
