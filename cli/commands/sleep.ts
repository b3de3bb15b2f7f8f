import { setTimeout as delay } from 'node:timers/promises';
import { WhittleError } from '../../api/errors.ts';
import { numberOption, parseCommand, requireOne, type CliIo } from '../io.ts';
import { ProgressBar } from '../progress.ts';
import { recordCommand } from '../record.ts';

/**
 * `whittle __sleep SECONDS`: a hidden command the job engine's tests (and the app's e2e tests) run
 * as a job that takes a known time, reports progress, and can be cancelled or made to crash,
 * without loading a model. Not listed in `whittle --help`.
 *
 * It records nothing unless WHITTLE_SLEEP_RECORD=1, so sleeping jobs do not fill the user's store;
 * with it, the sleep is recorded as an `eval` run (command `__sleep ...`), which is how the tests
 * check that a job killed mid-run leaves no run `running`.
 */
export const summary = '(hidden) sleep in steps, reporting progress: for job tests';
export const usage = `
whittle __sleep SECONDS [--crash none|throw|exit] [--step-ms N] [--json]

Sleeps SECONDS in steps of --step-ms (default 100), reporting progress after each step.
--crash throw   fails half way with an internal error (exit 1, the usual error report)
--crash exit    exits half way with code 70 and no result, as a crashing native module would`;

const CRASHES = ['none', 'throw', 'exit'] as const;
type Crash = (typeof CRASHES)[number];

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('__sleep', argv, {
    crash: { type: 'string', default: 'none' },
    'step-ms': { type: 'string' },
  });
  const seconds = numberOption('__sleep', 'SECONDS', requireOne('__sleep', positionals, 'SECONDS'), { min: 0, max: 3600 })!;
  const crash = values.crash as Crash;
  if (!CRASHES.includes(crash)) throw new WhittleError('BAD_USAGE', `whittle __sleep: --crash must be one of ${CRASHES.join(', ')}, got "${values.crash}"`);
  const stepMs = numberOption('__sleep', 'step-ms', values['step-ms'], { min: 1, max: 60_000, integer: true }) ?? 100;
  const steps = Math.max(1, Math.round((seconds * 1000) / stepMs));
  const bar = new ProgressBar(io, 'sleep');

  const work = async () => {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      if (i === Math.floor(steps / 2) && crash !== 'none') {
        if (crash === 'throw') throw new Error('__sleep: crashing half way, as asked (--crash throw)');
        io.stderr('whittle: __sleep: exiting half way with code 70, as asked (--crash exit)\n');
        process.exit(70);
      }
      bar.update(i, steps);
      await delay(stepMs);
    }
    bar.update(steps, steps);
    bar.done();
    return { seconds: (performance.now() - t0) / 1000, steps, warnings: [] as string[] };
  };
  const result = await recordCommand({
    kind: 'eval',
    argv: ['__sleep', ...argv],
    inputs: [],
    record: process.env.WHITTLE_SLEEP_RECORD === '1' && !values['no-record'],
    work,
  });
  if (values.json) io.stdout(JSON.stringify(result) + '\n');
  else io.stdout(`slept ${result.seconds.toFixed(1)} s in ${steps} steps\n`);
  return 0;
}
