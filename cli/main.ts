import { WhittleError, exitCodeFor } from '../api/errors.ts';
import { processIo, type CliIo } from './io.ts';
// Imported as the CLI starts: it takes the engine's progress descriptor out of the environment
// before any command can start a child process that would inherit it.
import '../core/jobs/channel.ts';

/** Each command module exports `run(argv, io): Promise<number>` (the exit code). */
type CommandModule = { run: (argv: string[], io: CliIo) => Promise<number>; summary: string; usage: string };

const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  inspect: () => import('./commands/inspect.ts'),
  convert: () => import('./commands/convert.ts'),
  quantize: () => import('./commands/quantize.ts'),
  prune: () => import('./commands/prune.ts'),
  analyze: () => import('./commands/analyze.ts'),
  run: () => import('./commands/run.ts'),
  eval: () => import('./commands/eval.ts'),
  experiments: () => import('./commands/experiments.ts'),
  devices: () => import('./commands/devices.ts'),
  demo: () => import('./commands/demo.ts'),
  serve: () => import('./commands/serve.ts'),
};

/** Commands that work but are not listed in --help: test helpers. */
const HIDDEN_COMMANDS: Record<string, () => Promise<CommandModule>> = {
  __sleep: () => import('./commands/sleep.ts'),
};

async function usage(io: CliIo): Promise<void> {
  const lines = ['whittle — make models smaller and faster, and see what it costs', '', 'Commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) {
    const mod = await load();
    lines.push(`  ${name.padEnd(12)} ${mod.summary}`);
  }
  lines.push('', 'Every command takes --json (stdout is then exactly one JSON document) and --help.');
  io.stdout(lines.join('\n') + '\n');
}

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  const wantsJson = rest.includes('--json');
  try {
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      await usage(io);
      return name === undefined ? 2 : 0;
    }
    if (name === '--version') {
      const { WHITTLE_VERSION } = await import('../core/version.ts');
      io.stdout(WHITTLE_VERSION + '\n');
      return 0;
    }
    const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : Object.hasOwn(HIDDEN_COMMANDS, name) ? HIDDEN_COMMANDS[name] : undefined;
    if (!load) throw new WhittleError('BAD_USAGE', `unknown command "${name}"; run whittle --help for the list`);
    const mod = await load();
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout(mod.usage.trim() + '\n');
      return 0;
    }
    return await mod.run(rest, io);
  } catch (err) {
    return reportError(err, io, wantsJson);
  }
}

/** One line naming the file and the problem; a stack only when WHITTLE_DEBUG is set. */
export function reportError(err: unknown, io: CliIo, json: boolean): number {
  const known = err instanceof WhittleError;
  const code = known ? err.code : 'INTERNAL';
  const message = known ? err.message : `internal error: ${(err as Error)?.message ?? String(err)}`;
  if (json) io.stdout(JSON.stringify({ error: { code, message } }) + '\n');
  io.stderr(`whittle: ${message}\n`);
  if (process.env.WHITTLE_DEBUG && err instanceof Error && err.stack) io.stderr(err.stack + '\n');
  return known ? exitCodeFor(err.code) : 1;
}
