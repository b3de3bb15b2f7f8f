import { spawn } from 'node:child_process';
import { WhittleError } from '../../api/errors.ts';
import { DEFAULT_HOST, DEFAULT_PORT, exposureWarning, startServer, type RunningServer, type ServeOptions } from '../../server/server.ts';
import { numberOption, parseCommand, type CliIo } from '../io.ts';

export const summary = 'the app in a browser (for a GPU box reached over SSH)';

export const usage = `
whittle serve [--port N] [--host H] [--workspace DIR]... [--open] [--max-upload-bytes N] [--json]

Serves the app and its engine over HTTP + WebSocket, for a browser on this machine or at the other
end of an SSH tunnel:  ssh -L 7400:127.0.0.1:7400 gpu-box   then   whittle serve --workspace ~/models
and open the printed URL. It runs until Ctrl+C (or SIGTERM), then stops its jobs and exits.

  --port N            port to listen on (default ${DEFAULT_PORT}; 0 picks any free port)
  --host H            address to bind (default ${DEFAULT_HOST}); anything else is reachable from
                      other machines, and a warning says so
  --workspace DIR     a folder whose models and data the app may read (repeatable); files dropped
                      in the browser are uploaded to WHITTLE_HOME/uploads, always readable
  --open              open the URL in this machine's browser
  --max-upload-bytes  largest file that can be uploaded (default 8 GiB)
  --json              print {"url","host","port","token"} as one JSON line instead

The URL carries a one-time secret (?token=...) that the browser swaps for a session cookie. Without
it every request is refused; so are other Host names (DNS rebinding), WebSocket connections and
uploads from other origins, and reads outside the workspace and uploads.
`;

const SERVE_OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  workspace: { type: 'string', multiple: true },
  open: { type: 'boolean' },
  'no-open': { type: 'boolean' },
  'max-upload-bytes': { type: 'string' },
} as const;

/** Starts the server and prints its URL; `run` then waits for a signal. Tests call this directly. */
export async function startServe(argv: string[], io: CliIo, overrides: Partial<ServeOptions> = {}): Promise<RunningServer> {
  const { values, positionals } = parseCommand('serve', argv, SERVE_OPTIONS);
  if (positionals.length > 0) throw new WhittleError('BAD_USAGE', `whittle serve: takes no arguments, got "${positionals.join(' ')}"; folders go after --workspace`);
  const port = numberOption('serve', 'port', values.port, { integer: true, min: 0, max: 65535 }) ?? DEFAULT_PORT;
  const maxUploadBytes = numberOption('serve', 'max-upload-bytes', values['max-upload-bytes'], { integer: true, min: 1 });
  const host = values.host ?? DEFAULT_HOST;
  if (host.trim() === '') throw new WhittleError('BAD_USAGE', 'whittle serve: --host must not be empty');

  const server = await startServer({
    host,
    port,
    workspace: values.workspace ?? [],
    ...(maxUploadBytes === undefined ? {} : { maxUploadBytes }),
    log: (line) => io.stderr(`whittle serve: ${line}\n`),
    ...overrides,
  });
  const warning = exposureWarning(host);
  if (warning) io.stderr(`whittle serve: ${warning}\n`);
  if (values.json) {
    io.stdout(JSON.stringify({ url: server.url, host: server.host, port: server.port, token: server.token }) + '\n');
  } else {
    io.stdout(`Whittle is serving on ${server.url}\n`);
    io.stderr(`  WHITTLE_HOME ${server.home}\n`);
    io.stderr(`  readable     ${[server.uploadsDir, ...server.workspace].join(', ')}\n`);
    io.stderr('  Ctrl+C stops the server and its jobs.\n');
  }
  if (values.open && !values['no-open']) openInBrowser(server.url, io);
  return server;
}

function openInBrowser(url: string, io: CliIo): void {
  const [command, args] = process.platform === 'darwin' ? ['open', [url]]
    : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]]
    : ['xdg-open', [url]];
  try {
    const child = spawn(command, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', (err) => io.stderr(`whittle serve: could not open a browser (${err.message}); open the URL yourself\n`));
    child.unref();
  } catch (err) {
    io.stderr(`whittle serve: could not open a browser (${(err as Error).message}); open the URL yourself\n`);
  }
}

function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  // Listening first: a Ctrl+C while the engine starts still shuts it down properly.
  const stopRequested = nextSignal();
  const server = await startServe(argv, io);
  const signal = await stopRequested;
  io.stderr(`whittle serve: ${signal}: stopping (jobs are cancelled)\n`);
  // A second Ctrl+C while jobs wind down means "now".
  void nextSignal().then(() => process.exit(130));
  await server.close();
  // Everything is closed; should some library still hold the event loop open, do not hang on exit.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  return 0;
}
