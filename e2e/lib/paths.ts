import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is e2e/lib/paths.ts). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * The shared fixtures beside the checkout (README: ../shared/fixtures), by their real path: the
 * engine records models by real path, and the folder may be a symlink.
 */
const fixturesGiven = resolve(process.env.WHITTLE_FIXTURES ?? join(ROOT, '..', 'shared', 'fixtures'));
export const FIXTURES = existsSync(fixturesGiven) ? realpathSync(fixturesGiven) : fixturesGiven;
/** Where the e2e run writes the screenshots the README shows, and perf.json. */
export const SCREENSHOTS = join(ROOT, 'docs', 'screenshots');
export const WHITTLE_BIN = join(ROOT, 'bin', 'whittle.mjs');
/** The Debian chromium the browser project runs (CI installs it; CHROMIUM overrides). */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export const F = {
  mnist: join(FIXTURES, 'mnist', 'mnist.onnx'),
  mnistImages: join(FIXTURES, 'mnist', 't10k-images-idx3-ubyte.gz'),
  squeezenet: join(FIXTURES, 'squeezenet', 'squeezenet1.0_fp32.onnx'),
  imagenet: join(FIXTURES, 'imagenet-100'),
};

export function fixturesPresent(): boolean {
  return existsSync(F.mnist) && existsSync(F.mnistImages);
}
