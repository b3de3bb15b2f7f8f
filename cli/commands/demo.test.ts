import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { useTempHome, whittle } from '../testing.ts';

describe('whittle demo', () => {
  useTempHome('demo');

  it('bad usage exits 2 with one line', async () => {
    for (const argv of [['demo'], ['demo', 'chess'], ['demo', 'lottery', '--steps', '2'], ['demo', 'game-of-life', '--seeds', '0']]) {
      const r = await whittle(...argv);
      assert.equal(r.code, 2, argv.join(' '));
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
    }
  });

  it('game-of-life --json: one JSON document with the table figures, recorded as a run', async () => {
    const r = await whittle('demo', 'game-of-life', '--seeds', '2', '--steps', '2', '--max-epochs', '1', '--no-prune', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(doc.experiment, 'game-of-life');
    assert.deepEqual(doc.results.map((a: { steps: number; architecture: string; runs: unknown[] }) => `${a.steps} ${a.architecture} ${a.runs.length}`),
      ['1 minimal 2', '1 overcomplete 2', '2 minimal 2', '2 overcomplete 2']);
    assert.deepEqual(doc.results.map((a: { parameters: number }) => a.parameters), [25, 305, 48, 1609]);
    assert.equal(doc.prune, null);
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.equal(shown.status, 'succeeded');
    assert.equal(shown.metrics['summary.n1_minimal_successRate'], doc.summary.n1_minimal_successRate);
  });

  it('lottery prints the round table', async () => {
    const r = await whittle('demo', 'lottery', '--seeds', '1', '--rounds', '1', '--epochs', '1', '--no-record');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /round\s+weights kept\s+remaining\s+ticket \(rewound\)\s+random re-init/);
    assert.match(r.out, /^\s*1\s+13,620\s+80\.0 %/m);
  });
});
