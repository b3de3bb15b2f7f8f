import type { RunSummary } from '../../../../api/schemas.ts';
import { baseName } from '../../lib/format.ts';

/**
 * What a run did, in a few words, for run lists, plot tooltips and comparisons: the recipe's name
 * when it has one, else a description read from the recorded command (`quantize dynamic`,
 * `prune magnitude 50 %`, `eval`) or from the recipe's steps (`recipe: prune sparsegpt 50 % →
 * quantize static`). Every view names runs through here, so they read the same everywhere.
 *
 * A recipe run's command is only `run RECIPE.json`: its name and steps are in the recorded recipe
 * (RunDetail.recipe), which the caller passes when it has it.
 */
export interface RunDescription {
  /** The run's name, or what it did when it has none. */
  title: string;
  /** What it did, when `title` is a name (else null). */
  detail: string | null;
}

/** `--name value` or `--name=value` in an argv; null when absent. */
function flag(argv: readonly string[], name: string): string | null {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === name) return argv[i + 1] ?? null;
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return null;
}

function percent(fraction: number): string {
  const p = fraction * 100;
  return `${Number.isInteger(Math.round(p * 10) / 10) ? Math.round(p) : p.toFixed(1)} %`;
}

/** `prune magnitude 50 %`, `prune nm 2:4`, `prune wanda 2:4`. */
function pruneText(method: string, sparsity: number | null, pattern: string | null): string {
  if (pattern || method === 'nm') return `prune ${method} ${pattern ?? '2:4'}`;
  return `prune ${method} ${percent(sparsity ?? 0.5)}`;
}

/** `quantize static`, `quantize static per-channel`. */
function quantizeText(method: string, perChannel: boolean): string {
  return `quantize ${method}${perChannel ? ' per-channel' : ''}`;
}

/** One recipe step, as its CLI command would be described. */
function stepText(step: unknown): string | null {
  if (!step || typeof step !== 'object') return null;
  const s = step as { quantize?: Record<string, unknown>; prune?: Record<string, unknown> };
  if (s.quantize) return quantizeText(String(s.quantize['method'] ?? '?'), s.quantize['perChannel'] === true);
  if (s.prune) {
    const sparsity = typeof s.prune['sparsity'] === 'number' ? s.prune['sparsity'] : null;
    const pattern = typeof s.prune['pattern'] === 'string' ? s.prune['pattern'] : null;
    return pruneText(String(s.prune['method'] ?? '?'), sparsity, pattern);
  }
  return null;
}

/** A recorded recipe (RunDetail.recipe): its name, and its steps in words. */
export function describeRecipe(recipe: unknown): RunDescription | null {
  if (!recipe || typeof recipe !== 'object') return null;
  const r = recipe as { name?: unknown; steps?: unknown };
  const steps = Array.isArray(r.steps) ? r.steps.map(stepText).filter((s): s is string => s !== null) : [];
  const what = `recipe: ${steps.length ? steps.join(' → ') : 'no steps'}`;
  const name = typeof r.name === 'string' ? r.name.trim() : '';
  return name ? { title: name, detail: what } : { title: what, detail: null };
}

/** What a command line (the argv after `whittle`) did. */
export function describeCommand(kind: string, command: readonly string[]): string {
  const [sub, ...args] = command;
  switch (sub) {
    case 'quantize':
      return quantizeText(flag(args, '--method') ?? '?', args.includes('--per-channel'));
    case 'prune': {
      const s = flag(args, '--sparsity');
      const n = s === null ? null : Number(s);
      return pruneText(flag(args, '--method') ?? '?', n !== null && Number.isFinite(n) ? n : null, flag(args, '--pattern'));
    }
    case 'eval':
      return flag(args, '--reference') ? 'eval vs reference' : 'eval';
    case 'analyze': {
      const f = flag(args, '--for');
      return f ? `analyze for ${f}` : 'analyze';
    }
    case 'convert':
      return args.includes('--external-data') ? 'convert to external data' : 'convert';
    case 'demo': {
      // the built-in experiments (`whittle demo game-of-life|lottery`), recorded as kind demo
      const name = args.find((a) => a === 'game-of-life' || a === 'lottery');
      return name === 'game-of-life' ? 'demo game of life' : name === 'lottery' ? 'demo lottery' : 'demo';
    }
    case 'run': {
      // The app's jobs write their recipe as <job folder>/recipe.json, a name that says nothing.
      const file = args.find((a) => !a.startsWith('-'));
      const stem = file ? baseName(file).replace(/\.json$/i, '') : '';
      return stem && stem !== 'recipe' ? `recipe ${stem}` : 'recipe';
    }
    default:
      return sub ?? kind;
  }
}

/** The run's name and what it did; `recipe` is its recorded recipe, when the caller has it. */
export function describeRun(run: Pick<RunSummary, 'kind' | 'command'>, recipe?: unknown): RunDescription {
  return describeRecipe(recipe) ?? { title: describeCommand(run.kind, run.command), detail: null };
}
