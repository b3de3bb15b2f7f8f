import { parseArgs, type ParseArgsConfig } from 'node:util';
import { WhittleError } from '../api/errors.ts';

/** What a command writes to: injected so tests can capture output without spawning a process. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** True when stderr is a terminal: progress bars are drawn only then. */
  interactive: boolean;
}

export const processIo: CliIo = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  interactive: Boolean(process.stderr.isTTY),
};

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Options every command takes. */
export const COMMON_OPTIONS = {
  json: { type: 'boolean' },
  'no-record': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export interface ParsedCommand<V> {
  values: V;
  positionals: string[];
}

/** util.parseArgs, with its errors turned into BAD_USAGE (exit 2) that name the command. */
export function parseCommand<O extends OptionSpec>(command: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs explains some problems over several lines; errors here are always one line
    const message = (err as Error).message.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
    throw new WhittleError('BAD_USAGE', `whittle ${command}: ${message}`);
  }
}

export function requireOne(command: string, positionals: string[], what: string): string {
  if (positionals.length !== 1) {
    throw new WhittleError('BAD_USAGE', `whittle ${command}: expected exactly one ${what}, got ${positionals.length}`);
  }
  return positionals[0]!;
}

export function numberOption(command: string, name: string, raw: string | undefined, opts: { min?: number; max?: number; integer?: boolean } = {}): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const bad = !Number.isFinite(n) || (opts.integer && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max);
  if (bad) {
    const range = [opts.min !== undefined ? `>= ${opts.min}` : '', opts.max !== undefined ? `<= ${opts.max}` : ''].filter(Boolean).join(' and ');
    throw new WhittleError('BAD_USAGE', `whittle ${command}: --${name} must be ${opts.integer ? 'an integer' : 'a number'}${range ? ' ' + range : ''}, got "${raw}"`);
  }
  return n;
}

/** Renders rows as an aligned text table; numbers are right-aligned. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const line = (r: string[]) => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n') + '\n';
}

export { formatBytes } from '../core/format-bytes.ts';

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}
