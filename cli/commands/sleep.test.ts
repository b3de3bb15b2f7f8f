import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { useTempHome, whittle } from '../testing.ts';

describe('whittle __sleep (hidden, for job tests)', () => {
  useTempHome('sleep');

  it('sleeps in steps and prints its result; --help does not list it', async () => {
    const r = await whittle('__sleep', '0.05', '--step-ms', '10', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(doc.steps, 5);
    assert.ok(doc.seconds >= 0.04);
    assert.equal(doc.runId, undefined, 'records nothing unless WHITTLE_SLEEP_RECORD=1');
    const help = await whittle('--help');
    assert.doesNotMatch(help.out, /__sleep/);
  });

  it('--crash throw fails half way as an internal error; bad flags are bad usage', async () => {
    const r = await whittle('__sleep', '0.02', '--step-ms', '5', '--crash', 'throw', '--json');
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.out).error.code, 'INTERNAL');
    assert.equal((await whittle('__sleep', '1', '--crash', 'sometimes')).code, 2);
    assert.equal((await whittle('__sleep', '-1')).code, 2);
  });
});
