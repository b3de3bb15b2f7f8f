import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { WhittleError } from '../../api/errors.ts';

/**
 * Which files the engine may touch for a caller. In Electron the user owns the machine and any
 * path goes; in server mode (SPEC §5) a path must lie, after symbolic links are resolved, inside
 * one of the folders the server was given (uploads, --workspace folders), so a page that reached
 * the WebSocket cannot read ~/.ssh by naming it.
 */
export interface PathPolicy {
  /** null: any path. */
  readonly roots: readonly string[] | null;
  /** The real absolute path of an existing file or folder the caller may read. */
  readable(path: string): Promise<string>;
  /** The absolute path of a folder (existing or not) the caller may write into. */
  writable(path: string): Promise<string>;
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

async function realOrNull(path: string): Promise<string | null> {
  try {
    return await realpath(path);
  } catch {
    return null;
  }
}

/** The real path of the deepest existing ancestor, with the missing rest appended. */
async function realPathForNew(path: string): Promise<string> {
  const missing: string[] = [];
  let current = path;
  for (;;) {
    const real = await realOrNull(current);
    if (real !== null) return join(real, ...missing.reverse());
    const parent = dirname(current);
    if (parent === current) return path;
    missing.push(basename(current));
    current = parent;
  }
}

export function createPathPolicy(roots: readonly string[] | null): PathPolicy {
  const lexicalRoots = roots?.map((r) => resolve(r)) ?? null;
  // Roots are resolved once (they may themselves be links, as /tmp is on macOS).
  let realRoots: Promise<string[]> | null = null;
  const getRealRoots = () => (realRoots ??= Promise.all((lexicalRoots ?? []).map(async (r) => (await realOrNull(r)) ?? r)));

  const refuse = (path: string) => new WhittleError('BAD_INPUT',
    `${path}: outside the folders this server may read (${(lexicalRoots ?? []).join(', ') || 'none configured'}); open the folder with --workspace or upload the file`, { file: path });

  async function check(path: string, real: string): Promise<string> {
    if (lexicalRoots === null) return real;
    const allowed = await getRealRoots();
    if (!allowed.some((root) => inside(root, real))) throw refuse(path);
    return real;
  }

  return {
    roots: lexicalRoots,
    async readable(path) {
      const absolute = resolve(path);
      const real = await realOrNull(absolute);
      if (real === null) {
        // Outside every root, "no such file" would tell the caller what exists there: refuse
        // exactly as for a file that does exist.
        if (lexicalRoots !== null && !lexicalRoots.some((root) => inside(root, absolute))) throw refuse(path);
        throw new WhittleError('NOT_FOUND', `${absolute}: no such file or folder`, { file: absolute });
      }
      return check(path, real);
    },
    async writable(path) {
      const absolute = resolve(path);
      return check(path, await realPathForNew(absolute));
    },
  };
}
