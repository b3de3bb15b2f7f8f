import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * The small pure checks the server's security rests on (SPEC §5), kept apart so each has its own
 * test: secrets, the Host and Origin rules, cookies, and names that become file names.
 */

export const SESSION_COOKIE = 'whittle_session';

/** 32 random bytes as hex: the printed token and every session id. */
export function newSecret(): string {
  return randomBytes(32).toString('hex');
}

/**
 * Constant-time comparison. Both sides are hashed first so that neither their contents nor their
 * lengths change how long the comparison takes.
 */
export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

export function isLoopbackHost(host: string): boolean {
  const h = stripBrackets(host.toLowerCase());
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

export function isWildcardHost(host: string): boolean {
  const h = stripBrackets(host);
  return h === '0.0.0.0' || h === '::';
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** "localhost:7400" → {name: 'localhost', port: 7400}; "[::1]:7400" → {name: '::1', ...}; null if malformed. */
export function parseHostHeader(header: string | undefined): { name: string; port: number } | null {
  if (!header) return null;
  const value = header.trim().toLowerCase();
  let name: string;
  let portText: string | undefined;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0) return null;
    name = value.slice(1, end);
    const rest = value.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return null;
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const parts = value.split(':');
    if (parts.length > 2) return null;
    name = parts[0]!;
    portText = parts[1];
  }
  if (!name || !/^[a-z0-9.\-:_]+$/.test(name)) return null;
  // Browsers leave out the default port.
  if (portText === undefined) return { name, port: 80 };
  if (!/^\d{1,5}$/.test(portText)) return null;
  return { name, port: Number(portText) };
}

export interface HostRule {
  /** The address the server is bound to, as given (127.0.0.1, ::1, 0.0.0.0, 10.0.0.5, a name). */
  boundHost: string;
  port: number;
  /** More names the server answers to (the machine's host name when bound to every interface). */
  extraNames?: string[];
}

/**
 * Whether a request's Host header names this server. A page on evil.example whose DNS name was
 * rebound to 127.0.0.1 still sends `Host: evil.example:PORT`, so checking the name defeats DNS
 * rebinding. Loopback binds also answer to localhost/127.0.0.1/[::1]; wildcard binds answer to IP
 * literals (a rebinding attack needs a name, never an IP) and the configured names.
 */
export function isAllowedHost(header: string | undefined, rule: HostRule): boolean {
  const parsed = parseHostHeader(header);
  if (!parsed || parsed.port !== rule.port) return false;
  const bound = stripBrackets(rule.boundHost.toLowerCase());
  const names = new Set([bound, ...(rule.extraNames ?? []).map((n) => n.toLowerCase())]);
  if (isLoopbackHost(bound)) for (const n of ['localhost', '127.0.0.1', '::1']) names.add(n);
  if (names.has(parsed.name)) return true;
  return isWildcardHost(bound) && isIP(parsed.name) !== 0;
}

/** The Origin a page served by this server sends: exactly `http://` + the Host it was loaded from. */
export function isSameOrigin(origin: string | undefined, hostHeader: string | undefined): boolean {
  if (!origin || !hostHeader) return false;
  return origin.toLowerCase() === `http://${hostHeader.trim().toLowerCase()}`;
}

/** One cookie's value from a Cookie header, or null. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export function sessionCookieHeader(sessionId: string): string {
  return `${SESSION_COOKIE}=${sessionId}; HttpOnly; SameSite=Strict; Path=/`;
}

/**
 * The page policy: nothing but this origin. Svelte transitions set inline styles, hence
 * 'unsafe-inline' for styles only; scripts never run inline.
 */
export function contentSecurityPolicy(hostHeader: string | undefined): string {
  // Refusal pages go out for Host headers that were not accepted: only a well-formed one is echoed.
  const socket = parseHostHeader(hostHeader) ? ` ws://${hostHeader!.trim()}` : '';
  return [
    "default-src 'self'",
    `connect-src 'self'${socket}`,
    "img-src 'self' data: blob:",
    "style-src 'self' 'unsafe-inline'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const MAX_NAME_BYTES = 255;

/**
 * Why an uploaded file's name cannot be used as a file name, or null when it can. Names are taken
 * as they are (the browser's File.name), never cleaned up: a name that needs cleaning is refused,
 * so the file on disk is always called what the user dropped.
 */
export function uploadNameProblem(name: string | null): string | null {
  if (name === null || name === '') return 'a file name is required (?name=...)';
  if (name === '.' || name === '..' || name.includes('..')) return `file name "${name}" contains ".."`;
  if (/[/\\]/.test(name)) return `file name "${name}" contains a path separator`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'file name contains control characters';
  if (name.includes(':')) return `file name "${name}" contains ":"`;
  if (name.trim() !== name) return `file name "${name}" starts or ends with white space`;
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `file name is longer than ${MAX_NAME_BYTES} bytes`;
  return null;
}

/** Upload groups are folder names the renderer makes up (one per dropped model). */
export function uploadGroupProblem(group: string): string | null {
  return /^[A-Za-z0-9_-]{1,64}$/.test(group) ? null : `upload group "${group.slice(0, 80)}" must be 1-64 letters, digits, "-" or "_"`;
}
