import { homedir } from 'node:os';
import { posix, resolve, win32 } from 'node:path';

/**
 * Where the store lives: WHITTLE_HOME when set (tests and portable installs use it), else the
 * platform's per-user app-data folder, so runs survive reinstalls and never land in a checkout.
 */
export function resolveWhittleHome(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir(),
): string {
  if (env.WHITTLE_HOME) return resolve(env.WHITTLE_HOME);
  if (platform === 'win32') {
    return win32.join(env.APPDATA || win32.join(home, 'AppData', 'Roaming'), 'Whittle');
  }
  if (platform === 'darwin') return posix.join(home, 'Library', 'Application Support', 'Whittle');
  // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
  const xdg = env.XDG_DATA_HOME;
  return posix.join(xdg && posix.isAbsolute(xdg) ? xdg : posix.join(home, '.local', 'share'), 'whittle');
}
