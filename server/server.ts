import { mkdir, realpath, stat } from 'node:fs/promises';
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { WhittleError } from '../api/errors.ts';
import { resolveWhittleHome } from '../core/store/home.ts';
import { loadEngineFactory, type Engine, type EngineFactory } from './engine.ts';
import { fileUrlFor, FILES_PREFIX, serveDownload } from './files.ts';
import { PAGE_TEXT, escapeHtml, sendJsonError, sendPage } from './responses.ts';
import { createRpcHub, RPC_PATH } from './rpc.ts';
import {
  isAllowedHost, isLoopbackHost, isSameOrigin, isWildcardHost, newSecret, readCookie, secretsEqual,
  SESSION_COOKIE, sessionCookieHeader, type HostRule,
} from './security.ts';
import { serveRenderer } from './static.ts';
import { DEFAULT_MAX_UPLOAD_BYTES, handleUpload } from './upload.ts';

/**
 * `whittle serve`: the app in a browser, for a GPU box reached over SSH (SPEC §5). One token,
 * printed once, is swapped for an HttpOnly session cookie; every request then needs the cookie,
 * a Host header naming this server, and (for the WebSocket and uploads) this server's Origin.
 */
export const DEFAULT_PORT = 7400;
export const DEFAULT_HOST = '127.0.0.1';
export const UPLOAD_PATH = '/upload';
export const DEFAULT_RENDERER_DIR = fileURLToPath(new URL('../dist/renderer/', import.meta.url));
/** Sessions kept at once; each token exchange makes one, so only a token holder can add more. */
const MAX_SESSIONS = 256;

export interface ServeOptions {
  /** Address to bind; 127.0.0.1 unless the user asks otherwise. */
  host?: string;
  /** 0 picks any free port. */
  port?: number;
  /** Folders (besides uploads) the engine may read models and data from. */
  workspace?: string[];
  /** WHITTLE_HOME; default: the environment's or the platform's. */
  home?: string;
  /** The built app (Vite output). */
  rendererDir?: string;
  maxUploadBytes?: number;
  /** Ping interval; a socket that misses one pong is dropped. */
  heartbeatMs?: number;
  /** More Host names to answer to (for binds to a specific address reached by name). */
  hostNames?: string[];
  /** The engine; default: core/jobs/engine.ts. Tests pass a stand-in. */
  createEngine?: EngineFactory;
  /** Diagnostics (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  host: string;
  port: number;
  token: string;
  home: string;
  uploadsDir: string;
  workspace: string[];
  engine: Engine;
  /** Stops listening, closes every socket, then closes the engine (its jobs end with it). */
  close(): Promise<void>;
}

export function formatUrl(host: string, port: number, token?: string): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${h}:${port}/${token === undefined ? '' : `?token=${token}`}`;
}

/** The warning printed when the server can be reached from other machines. */
export function exposureWarning(host: string): string | null {
  if (isLoopbackHost(host)) return null;
  return `warning: listening on ${host}, not on 127.0.0.1: anyone who can reach this address and has the token can read the workspace, ` +
    'upload files and run jobs. Traffic is plain HTTP. Prefer the default and an SSH tunnel (ssh -L 7400:127.0.0.1:7400 HOST).';
}

async function existingFolder(dir: string): Promise<string> {
  const absolute = resolve(dir);
  const st = await stat(absolute).catch(() => null);
  if (!st) throw new WhittleError('NOT_FOUND', `--workspace ${dir}: no such folder`);
  if (!st.isDirectory()) throw new WhittleError('BAD_USAGE', `--workspace ${dir}: is not a folder`);
  return realpath(absolute);
}

/** Splits a request target without normalising it: `..` must reach the checks as sent. */
function splitTarget(url: string | undefined): { rawPath: string; query: URLSearchParams } {
  const target = url ?? '/';
  const q = target.indexOf('?');
  return q < 0 ? { rawPath: target, query: new URLSearchParams() } : { rawPath: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) };
}

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  const body = message + '\n';
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\n\r\n${body}`,
  );
  socket.destroy();
}

export async function startServer(options: ServeOptions = {}): Promise<RunningServer> {
  const host = options.host ?? DEFAULT_HOST;
  const requestedPort = options.port ?? DEFAULT_PORT;
  const log = options.log ?? ((line: string) => void process.stderr.write(`whittle serve: ${line}\n`));
  const rendererDir = options.rendererDir ?? DEFAULT_RENDERER_DIR;
  const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;

  const workspace: string[] = [];
  for (const dir of options.workspace ?? []) workspace.push(await existingFolder(dir));
  // One real path for the home, so paths the engine reports and paths checked here agree.
  const homeGiven = options.home ?? resolveWhittleHome();
  try {
    for (const sub of ['uploads', 'artifacts', 'exports']) await mkdir(join(homeGiven, sub), { recursive: true });
  } catch (err) {
    throw new WhittleError('BAD_INPUT', `${homeGiven}: cannot use it as WHITTLE_HOME: ${(err as Error).message}`, { file: homeGiven, cause: err });
  }
  const home = await realpath(homeGiven);
  const uploadsDir = join(home, 'uploads');

  const token = newSecret();
  const sessions: string[] = [];
  const hasSession = (req: IncomingMessage): boolean => {
    const given = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (!given) return false;
    let found = false;
    for (const s of sessions) found = secretsEqual(given, s) || found;
    return found;
  };
  const newSession = (): string => {
    const id = newSecret();
    sessions.push(id);
    if (sessions.length > MAX_SESSIONS) sessions.shift();
    return id;
  };

  const createEngine = options.createEngine ?? (await loadEngineFactory());
  const engine = await createEngine({
    mode: 'browser',
    home,
    readableRoots: [uploadsDir, ...workspace],
    uploadUrl: UPLOAD_PATH,
    fileUrl: (path) => fileUrlFor(home, path),
  });
  const hub = createRpcHub(engine, { heartbeatMs: options.heartbeatMs ?? 30_000, log });

  let hostRule: HostRule = { boundHost: host, port: requestedPort };
  const misdirected = (): string[] => [
    `This server answers only to <code>${escapeHtml(formatUrl(host, hostRule.port))}</code>` +
      (isLoopbackHost(host) ? ' (or localhost / 127.0.0.1 on that port)' : '') + '.',
    'Other names are refused so that a web page cannot reach it through a DNS name that points here. ' +
      'Through an SSH tunnel, forward the same port number: <code>ssh -L PORT:127.0.0.1:PORT HOST</code>.',
  ];

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!isAllowedHost(req.headers.host, hostRule)) return sendPage(req, res, 421, 'Wrong address', misdirected());
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') {
      // OPTIONS included: there is no CORS preflight to answer, cross-origin requests are never allowed.
      return sendPage(req, res, 405, 'Method not allowed', [`${escapeHtml(method)} is not accepted here.`], { Allow: 'GET, HEAD, POST' });
    }
    const { rawPath, query } = splitTarget(req.url);
    if (!rawPath.startsWith('/')) return sendPage(req, res, 400, 'Bad request', ['The request target must be a path.']);

    if (method !== 'POST' && query.has('token')) {
      if (!secretsEqual(query.get('token') ?? '', token)) return sendPage(req, res, 401, 'Sign in: wrong or expired token', [...PAGE_TEXT.unauthorized]);
      query.delete('token');
      const rest = query.toString();
      // "//evil.example" would be a redirect to another site.
      const path = rawPath.startsWith('//') || rawPath.startsWith('/\\') ? '/' : rawPath;
      res.setHeader('Set-Cookie', sessionCookieHeader(newSession()));
      return sendPage(req, res, 302, 'Signed in', ['<a href="/">Continue</a>'], { Location: path + (rest ? `?${rest}` : '') });
    }

    if (!hasSession(req)) {
      if (rawPath === UPLOAD_PATH) return sendJsonError(res, 401, 'BAD_USAGE', 'not signed in: open the URL whittle serve printed');
      return sendPage(req, res, 401, 'Sign in with the printed URL', [...PAGE_TEXT.unauthorized]);
    }

    if (method === 'POST') {
      if (rawPath !== UPLOAD_PATH) return sendPage(req, res, 405, 'Method not allowed', ['Only uploads are posted.'], { Allow: 'GET, HEAD' });
      if (!isSameOrigin(req.headers.origin, req.headers.host)) return sendJsonError(res, 403, 'BAD_USAGE', 'uploads are accepted only from this server\'s own page (Origin mismatch)');
      return handleUpload(req, res, query, { uploadsDir, maxBytes: maxUploadBytes, log });
    }
    if (rawPath === RPC_PATH) return sendPage(req, res, 426, 'Upgrade required', ['This address is the app\'s WebSocket.'], { Upgrade: 'websocket' });
    if (rawPath.startsWith(FILES_PREFIX)) return serveDownload(req, res, home, rawPath);
    return serveRenderer(req, res, rendererDir, rawPath);
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      log(`${req.method} ${req.url?.split('?')[0]}: ${(err as Error)?.stack ?? String(err)}`);
      if (!res.headersSent) sendPage(req, res, 500, 'Internal error', ['The server failed to answer this request; see its terminal.']);
      else res.destroy();
    });
  });
  // Uploads of models take as long as they take; a slow client still has to send its headers promptly.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    if (!isAllowedHost(req.headers.host, hostRule)) return refuseUpgrade(socket, 421, 'wrong Host: this server answers only to its own address');
    if (splitTarget(req.url).rawPath !== RPC_PATH) return refuseUpgrade(socket, 404, `WebSocket is only at ${RPC_PATH}`);
    if (!hasSession(req)) return refuseUpgrade(socket, 401, 'not signed in: open the URL whittle serve printed');
    if (!isSameOrigin(req.headers.origin, req.headers.host)) return refuseUpgrade(socket, 403, 'Origin must be this server\'s own page');
    hub.accept(req, socket, head);
  });

  try {
    await new Promise<void>((resolveListen, rejectListen) => {
      server.once('error', rejectListen);
      server.listen(requestedPort, host, () => {
        server.off('error', rejectListen);
        resolveListen();
      });
    });
  } catch (err) {
    await hub.close();
    await engine.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new WhittleError('BAD_USAGE', `port ${requestedPort} on ${host} is in use: pass --port N (or --port 0 for any free port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new WhittleError('BAD_USAGE', `--host ${host}: not an address of this machine`);
    if (code === 'EACCES') throw new WhittleError('BAD_USAGE', `port ${requestedPort} needs privileges: pick one above 1023`);
    throw err;
  }
  server.on('error', (err) => log(`server error: ${err.message}`));
  const port = (server.address() as AddressInfo).port;
  hostRule = { boundHost: host, port, extraNames: [...(options.hostNames ?? []), ...(isWildcardHost(host) ? [hostname()] : [])] };

  let closing: Promise<void> | null = null;
  return {
    url: formatUrl(host, port, token),
    host,
    port,
    token,
    home,
    uploadsDir,
    workspace,
    engine,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((done) => server.close(() => done()));
        server.closeAllConnections();
        await hub.close();
        await stopped;
        await engine.close();
      })();
      return closing;
    },
  };
}
