import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { peakRssBytes } from './peak-rss.ts';

test('peakRssBytes is the program\'s own peak, not its parent\'s carried across fork and exec', { skip: !existsSync('/proc/self/status') && 'no /proc here' }, () => {
  // a parent that touches 400 MiB, then starts a child that only reports
  const child = `import { peakRssBytes } from ${JSON.stringify(new URL('./peak-rss.ts', import.meta.url).href)};
    console.log(JSON.stringify({ peak: peakRssBytes(), maxRSS: process.resourceUsage().maxRSS * 1024 }));`;
  const parent = `const big = Buffer.alloc(400 * 2 ** 20, 1);
    const out = require('node:child_process').execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ${JSON.stringify(child)}]).toString();
    big[1] = 2; console.log(out.trim());`;
  const { peak, maxRSS } = JSON.parse(execFileSync(process.execPath, ['-e', parent]).toString().trim().split('\n').pop()!) as { peak: number; maxRSS: number };
  const MiB = 2 ** 20;
  assert.ok(maxRSS > 400 * MiB, `maxRSS carries the parent's 400 MiB (${(maxRSS / MiB).toFixed(0)} MiB): the case this guards against`);
  assert.ok(peak < 300 * MiB && peak > 10 * MiB, `the child's own peak: ${(peak / MiB).toFixed(0)} MiB`);
  // and in this process it tracks what is touched
  const before = peakRssBytes();
  const touched = Buffer.alloc(64 * MiB, 1);
  assert.ok(peakRssBytes() >= before && peakRssBytes() >= touched.length, `${peakRssBytes()} after touching 64 MiB`);
});
