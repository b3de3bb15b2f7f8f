/**
 * The results of the built-in experiments (`whittle demo game-of-life|lottery --json`, recorded
 * as runs of kind `demo`; stores before schema version 2 had them as `eval`), read defensively from a run's result:
 * only what the views draw, and null when the document is not of that shape (an older or a
 * failed run). The shapes are native-models/zoo/{game-of-life/experiment,lottery/digits}.ts.
 */

export type DemoName = 'game-of-life' | 'lottery';

export interface LotteryRow {
  round: number;
  kept: number;
  remaining: number;
  ticket: number;
  random: number | null;
  ticketBySeed: number[];
  randomBySeed: (number | null)[];
}

export interface LotteryView {
  experiment: 'lottery';
  hidden: number[];
  parameters: number;
  weights: number;
  train: number;
  test: number;
  seeds: number[];
  epochs: number;
  pruneFraction: number;
  rewindStep: number;
  rows: LotteryRow[];
  seconds: number | null;
  backend: string | null;
}

export interface LifeSeedRun {
  seed: number;
  success: boolean;
  stopped: string;
  epochs: number;
  /** Held-out cells right, 0..1. */
  accuracy: number;
  everyNeighbourhood: boolean | null;
}

export interface LifeArchitecture {
  steps: number;
  architecture: string;
  multiplier: number;
  parameters: number;
  runs: LifeSeedRun[];
  successes: number;
  successRate: number;
}

export interface LifePruneRound {
  round: number;
  kernelWeights: number;
  ticket: number;
  epochs: number;
  random: number | null;
}

export interface LifePrune {
  multiplier: number;
  seed: number;
  parametersBefore: number;
  parametersAfter: number;
  fraction: number;
  target: number;
  targetFraction: number | null;
  withinTarget: boolean;
  kernelWeights: number;
  dense: { test: number; epochs: number };
  rounds: LifePruneRound[];
  lastExactRound: number | null;
  fineTune: { kernelWeights: number; epochs: number } | null;
  unitsRemoved: number;
  accuracy: number;
  allRight: boolean;
  everyNeighbourhood: boolean;
}

export interface LifeView {
  experiment: 'game-of-life';
  seeds: number;
  maxEpochs: number | null;
  testBoards: number | null;
  testSize: number | null;
  results: LifeArchitecture[];
  prune: LifePrune | null;
  seconds: number | null;
  backend: string | null;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map(num).filter((x): x is number => x !== null) : []);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);

const isDemoName = (v: unknown): v is DemoName => v === 'game-of-life' || v === 'lottery';

/**
 * Which demo a run is, from its recorded command (`demo NAME …`; the name is the one positional,
 * wherever it stands), else from its result's `experiment` (a demo result recorded some other way).
 */
export function demoName(command: readonly string[], result?: unknown): DemoName | null {
  if (command[0] === 'demo') return command.slice(1).find(isDemoName) ?? null;
  const named = isObj(result) ? result['experiment'] : undefined;
  return isDemoName(named) ? named : null;
}

export function readLottery(result: unknown): LotteryView | null {
  if (!isObj(result) || !Array.isArray(result['rows'])) return null;
  const o = isObj(result['options']) ? result['options'] : {};
  const rows: LotteryRow[] = [];
  for (const r of result['rows']) {
    if (!isObj(r)) return null;
    const round = num(r['round']);
    const kept = num(r['kept']);
    const remaining = num(r['remaining']);
    const ticket = num(r['ticket']);
    if (round === null || kept === null || remaining === null || ticket === null) return null;
    rows.push({
      round, kept, remaining, ticket, random: num(r['random']),
      ticketBySeed: nums(r['ticketBySeed']),
      randomBySeed: Array.isArray(r['randomBySeed']) ? r['randomBySeed'].map(num) : [],
    });
  }
  if (!rows.length) return null;
  return {
    experiment: 'lottery',
    hidden: nums(o['hidden']),
    parameters: num(result['parameters']) ?? 0,
    weights: num(result['weights']) ?? rows[0]!.kept,
    train: num(result['train']) ?? 0,
    test: num(result['test']) ?? 0,
    seeds: nums(o['seeds']),
    epochs: num(o['epochs']) ?? 0,
    pruneFraction: num(o['pruneFraction']) ?? 0,
    rewindStep: num(o['rewindStep']) ?? 0,
    rows,
    seconds: num(result['seconds']),
    backend: str(result['backend']),
  };
}

function readPrune(p: unknown, o: Obj): LifePrune | null {
  if (!isObj(p) || !Array.isArray(p['rounds'])) return null;
  const dense = isObj(p['dense']) ? p['dense'] : {};
  const test = isObj(p['test']) ? p['test'] : {};
  const fine = isObj(p['fineTune']) ? p['fineTune'] : null;
  const po = isObj(o['prune']) ? o['prune'] : {};
  const rounds: LifePruneRound[] = [];
  for (const r of p['rounds']) {
    if (!isObj(r)) continue;
    const round = num(r['round']);
    const kernelWeights = num(r['kernelWeightsKept']);
    const ticket = num(r['ticket']);
    if (round === null || kernelWeights === null || ticket === null) continue;
    rounds.push({ round, kernelWeights, ticket, epochs: num(r['ticketEpochs']) ?? 0, random: num(r['random']) });
  }
  return {
    multiplier: num(p['multiplier']) ?? 0,
    seed: num(p['seed']) ?? 0,
    parametersBefore: num(p['parametersBefore']) ?? 0,
    parametersAfter: num(p['parametersAfter']) ?? 0,
    fraction: num(p['fraction']) ?? 0,
    target: num(p['target']) ?? 0,
    targetFraction: num(po['fraction']),
    withinTarget: bool(p['withinTarget']) ?? false,
    kernelWeights: num(p['kernelWeights']) ?? 0,
    dense: { test: num(dense['test']) ?? 0, epochs: num(dense['epochs']) ?? 0 },
    rounds,
    lastExactRound: num(p['lastExactRound']),
    fineTune: fine ? { kernelWeights: num(fine['kernelWeightsKept']) ?? 0, epochs: num(fine['epochs']) ?? 0 } : null,
    unitsRemoved: num(p['unitsRemoved']) ?? 0,
    accuracy: num(test['accuracy']) ?? 0,
    allRight: bool(p['allRight']) ?? false,
    everyNeighbourhood: bool(p['everyNeighbourhood']) ?? false,
  };
}

export function readGameOfLife(result: unknown): LifeView | null {
  if (!isObj(result) || !Array.isArray(result['results'])) return null;
  const o = isObj(result['options']) ? result['options'] : {};
  const results: LifeArchitecture[] = [];
  for (const a of result['results']) {
    if (!isObj(a) || !Array.isArray(a['runs'])) return null;
    const steps = num(a['steps']);
    const architecture = str(a['architecture']);
    if (steps === null || architecture === null) return null;
    const runs: LifeSeedRun[] = a['runs'].filter(isObj).map((r) => ({
      seed: num(r['seed']) ?? 0,
      success: bool(r['success']) ?? false,
      stopped: str(r['stopped']) ?? '',
      epochs: num(r['epochs']) ?? 0,
      accuracy: num(isObj(r['test']) ? r['test']['accuracy'] : null) ?? 0,
      everyNeighbourhood: bool(r['everyNeighbourhood']),
    }));
    results.push({
      steps, architecture, runs,
      multiplier: num(a['multiplier']) ?? 0,
      parameters: num(a['parameters']) ?? 0,
      successes: num(a['successes']) ?? runs.filter((r) => r.success).length,
      successRate: num(a['successRate']) ?? (runs.length ? runs.filter((r) => r.success).length / runs.length : 0),
    });
  }
  return {
    experiment: 'game-of-life',
    seeds: num(o['seeds']) ?? Math.max(0, ...results.map((r) => r.runs.length)),
    maxEpochs: num(o['maxEpochs']),
    testBoards: num(o['testBoards']),
    testSize: num(o['testSize']),
    results,
    prune: readPrune(result['prune'], o),
    seconds: num(result['seconds']),
    backend: str(result['backend']),
  };
}

export function median(xs: readonly number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
