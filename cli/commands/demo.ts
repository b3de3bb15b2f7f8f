import { resolve } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { createPassContext } from '../../core/passes/pass.ts';
import { FIXTURES } from '../../core/testing/fixtures.ts';
import { loadTrainingTf } from '../../core/train/runtime.ts';
import { GAME_OF_LIFE_DEFAULTS, runGameOfLife, type GameOfLifeReport } from '../../native-models/zoo/game-of-life/experiment.ts';
import { LOTTERY_DEFAULTS, runLottery, type LotteryReport } from '../../native-models/zoo/lottery/digits.ts';
import { formatCount, numberOption, parseCommand, table, type CliIo } from '../io.ts';
import { formatSeconds, ProgressBar } from '../progress.ts';
import { recordCommand } from '../record.ts';

export const summary = 'the built-in experiments: Game of Life, lottery tickets on digits';
export const usage = `
whittle demo game-of-life [--seeds N] [--steps N] [--multiplier M] [--max-epochs N] [--no-prune] [--json] [--no-record]
whittle demo lottery [--seeds N] [--rounds N] [--epochs N] [--data DIGITS] [--json] [--no-record]

game-of-life   Springer & Kenyon (2020): train convolutional networks to predict n = 1..N steps of
               Conway's Life (default N = ${Math.max(...GAME_OF_LIFE_DEFAULTS.steps)}), the minimal one (m = 1) and an overcomplete one
               (m = ${GAME_OF_LIFE_DEFAULTS.multiplier} × the filters), from --seeds seeds each (default ${GAME_OF_LIFE_DEFAULTS.seeds}); success = every cell
               of ${GAME_OF_LIFE_DEFAULTS.testBoards} held-out ${GAME_OF_LIFE_DEFAULTS.testSize}×${GAME_OF_LIFE_DEFAULTS.testSize} boards right. Then a one-step network with
               m = ${GAME_OF_LIFE_DEFAULTS.prune!.multiplier} is pruned to ≤ ${GAME_OF_LIFE_DEFAULTS.prune!.fraction * 100} % of its parameters by iterative magnitude pruning with
               rewinding (--no-prune skips it) and checked on the held-out boards and all 512
               neighbourhoods. A run that does not solve the validation boards stops after
               --max-epochs epochs (default ${GAME_OF_LIFE_DEFAULTS.maxEpochs}) or when its loss stalls.
lottery        Frankle & Carbin (2019): an MLP (64-${LOTTERY_DEFAULTS.hidden.join('-')}-10) on the digits fixture, iterative
               magnitude pruning (${LOTTERY_DEFAULTS.pruneFraction * 100} % of the remaining weights per round, ${LOTTERY_DEFAULTS.rounds} rounds) with rewinding to the
               initialisation; each round's ticket against a random re-initialisation with the same mask,
               mean test accuracy over --seeds seeds (default ${LOTTERY_DEFAULTS.seeds.length}). DIGITS defaults to the fixture
               ../shared/fixtures/digits.

Everything is seeded: the same command gives the same numbers on the same TF.js backend.`;

const EXPERIMENTS = ['game-of-life', 'lottery'] as const;

function pct(x: number, digits = 2): string {
  return `${(x * 100).toFixed(digits)} %`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export function renderGameOfLife(r: GameOfLifeReport, backend: string): string {
  const o = r.options;
  const lines = [
    `Game of Life: learn n steps exactly (Springer & Kenyon 2020). ${o.seeds} seeds per row; success = all ${formatCount(o.testBoards * o.testSize * o.testSize)} cells`,
    `of ${o.testBoards} held-out ${o.testSize}×${o.testSize} boards right. Training: fresh ${o.size}×${o.size} boards every epoch, stop when ${o.validationBoards} validation boards`,
    `are all right, or after ${o.patience} epochs without the validation loss improving, or after ${o.maxEpochs} epochs.`,
    '',
  ];
  const rows = r.results.map((a) => {
    const solved = a.runs.filter((x) => x.success);
    const everywhere = a.steps === 1 ? `${a.runs.filter((x) => x.everyNeighbourhood).length}/${a.runs.length}` : '—';
    return [a.steps, a.architecture, a.multiplier, a.parameters, `${a.successes}/${a.runs.length}`, pct(a.successRate, 0), everywhere,
      solved.length ? median(solved.map((x) => x.epochs)) : '—', pct(median(a.runs.map((x) => x.test.accuracy)), 2)];
  });
  lines.push(table(['n', 'network', 'm', 'parameters', 'exact', 'success rate', 'all 512 neighbourhoods', 'epochs (median of exact)', 'cells right (median)'], rows).trimEnd(), '');
  if (r.prune) {
    const p = r.prune;
    const control = p.rounds.some((x) => x.random !== null);
    lines.push(`Pruning a one-step network with m = ${p.multiplier} (seed ${p.seed}): iterative magnitude pruning, ${pct(o.prune!.perRound, 0)} of the remaining`,
      'kernel weights per round (one global threshold), survivors rewound to their initial values and retrained until every cell is right.', '');
    const rows: (string | number)[][] = [[0, p.kernelWeights, pct(p.dense.test), p.dense.epochs, ...(control ? ['—'] : [])]];
    for (const x of p.rounds) rows.push([x.round, x.kernelWeightsKept, pct(x.ticket), x.ticketEpochs, ...(control ? [x.random === null ? '—' : pct(x.random)] : [])]);
    if (p.fineTune) rows.push(['fine-tune', p.fineTune.kernelWeightsKept, '', p.fineTune.epochs, ...(control ? [''] : [])]);
    lines.push(table(['round', 'kernel weights', 'held-out cells right', 'epochs', ...(control ? ['random re-init'] : [])], rows));
    if (p.lastExactRound !== p.rounds.length) lines.push(p.lastExactRound === null ? 'No pruned ticket was exactly right.' : `Kept: the round ${p.lastExactRound} ticket, the last one exactly right${p.fineTune ? ', then pruned to the budget and fine-tuned with the mask fixed' : ''}.`);
    lines.push(`Parameters ${p.parametersBefore} → ${p.parametersAfter} non-zero (${pct(p.fraction, 1)}; ${p.unitsRemoved} dead units removed); target ≤ ${pct(o.prune!.fraction, 0)} = ${p.target}: ` +
      `${p.withinTarget ? 'within' : 'NOT within'}. Held-out cells right: ${pct(p.test.accuracy)}${p.allRight ? ' (all)' : ''}; ` +
      `right on all 512 neighbourhoods: ${p.everyNeighbourhood ? 'yes' : 'no'}.`, '');
  }
  lines.push(`${formatSeconds(r.seconds)} on TF.js ${backend}; ${r.validationNeighbourhoods} of the 512 3×3 neighbourhoods occur in the validation boards.`);
  return lines.join('\n') + '\n';
}

export function renderLottery(r: LotteryReport, backend: string): string {
  const o = r.options;
  const lines = [
    `Lottery tickets on digits: MLP 64-${o.hidden.join('-')}-10 (${formatCount(r.parameters)} parameters, ${formatCount(r.weights)} prunable weights), ${r.train} training / ${r.test} test samples.`,
    `Each round prunes ${pct(o.pruneFraction, 0)} of the remaining weights of every layer by magnitude, rewinds the survivors to ${o.rewindStep === 0 ? 'their initial values' : `their values after ${o.rewindStep} steps`}`,
    `and retrains ${o.epochs} epoch${o.epochs === 1 ? '' : 's'}; the control retrains a random re-initialisation under the same mask. Test accuracy, mean of ${o.seeds.length} seed${o.seeds.length === 1 ? '' : 's'}.`,
    '',
  ];
  const rows = r.rows.map((row) => [row.round, formatCount(row.kept), pct(row.remaining, 1), pct(row.ticket), row.random === null ? '—' : pct(row.random),
    row.random === null ? '—' : `${((row.ticket - row.random) * 100).toFixed(2)}`]);
  lines.push(table(['round', 'weights kept', 'remaining', 'ticket (rewound)', 'random re-init', 'ticket − random (points)'], rows));
  lines.push(`${formatSeconds(r.seconds)} on TF.js ${backend}.`);
  return lines.join('\n') + '\n';
}

/** The figures worth comparing across runs, as scalars (the store keeps scalars as metrics). */
function gameOfLifeSummary(r: GameOfLifeReport): Record<string, number | boolean> {
  const out: Record<string, number | boolean> = {};
  for (const a of r.results) out[`n${a.steps}_${a.architecture}_successRate`] = a.successRate;
  if (r.prune) Object.assign(out, { prune_parametersAfter: r.prune.parametersAfter, prune_fraction: r.prune.fraction, prune_cellAccuracy: r.prune.test.accuracy, prune_met: r.prune.withinTarget && r.prune.allRight });
  return out;
}

function lotterySummary(r: LotteryReport): Record<string, number> {
  const last = r.rows[r.rows.length - 1]!;
  return { denseAccuracy: r.rows[0]!.ticket, finalRemaining: last.remaining, finalTicketAccuracy: last.ticket, ...(last.random === null ? {} : { finalRandomAccuracy: last.random }) };
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('demo', argv, {
    seeds: { type: 'string' },
    steps: { type: 'string' },
    multiplier: { type: 'string' },
    'max-epochs': { type: 'string' },
    'no-prune': { type: 'boolean' },
    rounds: { type: 'string' },
    epochs: { type: 'string' },
    data: { type: 'string' },
  });
  const experiment = positionals[0];
  if (positionals.length !== 1 || !(EXPERIMENTS as readonly string[]).includes(experiment!)) {
    throw new WhittleError('BAD_USAGE', `whittle demo: expected one of ${EXPERIMENTS.join(', ')}, got ${positionals.length ? `"${positionals.join(' ')}"` : 'nothing'}`);
  }
  const int = (name: string, raw: string | undefined, min: number, max?: number) => numberOption('demo', name, raw, { min, integer: true, ...(max === undefined ? {} : { max }) });
  const onlyFor = (names: string[], which: string) => {
    for (const n of names) if (values[n as keyof typeof values] !== undefined) throw new WhittleError('BAD_USAGE', `whittle demo: --${n} is an option of demo ${which}`);
  };
  const bar = new ProgressBar(io, experiment!);
  const ctx = createPassContext({ progress: (phase, done, total) => bar.update(done, total, phase) });

  if (experiment === 'game-of-life') {
    onlyFor(['rounds', 'epochs', 'data'], 'lottery');
    const seeds = int('seeds', values.seeds, 1);
    const steps = int('steps', values.steps, 1, 5);
    const multiplier = int('multiplier', values.multiplier, 2);
    const maxEpochs = int('max-epochs', values['max-epochs'], 1);
    const report = await recordCommand({
      kind: 'demo',
      argv: ['demo', ...argv],
      inputs: [],
      record: !values['no-record'],
      work: async (recorded) => {
        const { tf, backend, package: pkg } = await loadTrainingTf();
        recorded?.updateEnvironment({ device: `${pkg} ${backend}`, seed: 0 });
        const r = await runGameOfLife(tf, {
          ...(seeds === undefined ? {} : { seeds }),
          ...(steps === undefined ? {} : { steps: Array.from({ length: steps }, (_, i) => i + 1) }),
          ...(multiplier === undefined ? {} : { multiplier }),
          ...(maxEpochs === undefined ? {} : { maxEpochs }),
          ...(values['no-prune'] ? { prune: null } : {}),
        }, ctx);
        bar.done();
        return { experiment: 'game-of-life', backend: `${pkg} ${backend}`, summary: gameOfLifeSummary(r), ...r };
      },
    });
    io.stdout(values.json ? JSON.stringify(report) + '\n' : renderGameOfLife(report, report.backend));
    return 0;
  }

  onlyFor(['steps', 'multiplier', 'max-epochs', 'no-prune'], 'game-of-life');
  const seeds = int('seeds', values.seeds, 1);
  const rounds = int('rounds', values.rounds, 1);
  const epochs = int('epochs', values.epochs, 1);
  const data = resolve(values.data ?? resolve(FIXTURES, 'digits'));
  const report = await recordCommand({
    kind: 'demo',
    argv: ['demo', ...argv],
    inputs: [{ role: 'data', path: data }],
    record: !values['no-record'],
    work: async (recorded) => {
      // An MLP has no convolutions, so it may train on the (faster) wasm backend.
      const { tf, backend, package: pkg } = await loadTrainingTf({ convolutions: false });
      recorded?.updateEnvironment({ device: `${pkg} ${backend}`, seed: 0 });
      const r = await runLottery(tf, {
        data,
        ...(seeds === undefined ? {} : { seeds: Array.from({ length: seeds }, (_, i) => i) }),
        ...(rounds === undefined ? {} : { rounds }),
        ...(epochs === undefined ? {} : { epochs }),
      }, ctx);
      bar.done();
      return { experiment: 'lottery', backend: `${pkg} ${backend}`, summary: lotterySummary(r), ...r };
    },
  });
  io.stdout(values.json ? JSON.stringify(report) + '\n' : renderLottery(report, report.backend));
  return 0;
}
