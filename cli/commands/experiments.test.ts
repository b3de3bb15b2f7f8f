import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { openStore } from '../../core/store/index.ts';
import type { CliIo } from '../io.ts';
import { main } from '../main.ts';
import { run } from './experiments.ts';

let home: string;
const ids: string[] = [];

/** Three recorded runs: an fp32 baseline eval, an int8 eval, and a quantize that failed. */
before(async () => {
  home = await mkdtemp(join(tmpdir(), 'whittle-cli-experiments-'));
  process.env.WHITTLE_HOME = home;
  const model = join(home, 'resnet18.onnx');
  await writeFile(model, 'fp32 weights');
  const store = openStore({ home });
  try {
    const base = await store.startRun({ kind: 'eval', command: ['eval', model], inputs: [{ role: 'model', path: model }], environment: { ep: 'cpu' } });
    base.recordMetrics({ accuracy: { top1: 0.76, top5: 0.93 }, latency: { p50Ms: 10 }, bytes: 4000 });
    await base.writeArtifact('predictions.json', (tmp) => writeFile(tmp, '[1,2,3]'));
    base.succeed({ accuracy: { top1: 0.76, top5: 0.93 } });
    const int8 = await store.startRun({ kind: 'eval', command: ['eval', 'int8 model.onnx'], inputs: [{ role: 'model', path: model }] });
    int8.recordMetrics({ accuracy: { top1: 0.75, top5: 0.93 }, latency: { p50Ms: 5 }, bytes: 1000, agreement: { top1: 0.98 } });
    int8.succeed({});
    const failed = await store.startRun({ kind: 'quantize', command: ['quantize', model, '-o', 'q.onnx'] });
    failed.fail(new WhittleError('RUNTIME', 'onnxruntime refused node "Conv_0", op Conv'));
    ids.push(base.id, int8.id, failed.id);
  } finally {
    store.close();
  }
});
after(() => rm(home, { recursive: true, force: true }));

async function whittle(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (t) => void (out += t), stderr: (t) => void (err += t), interactive: false };
  const code = await run(argv, io);
  return { code, out, err };
}

const usageError = (pattern: RegExp) => (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE' && pattern.test(e.message);

test('list shows runs newest first with their main metrics', async () => {
  const { code, out } = await whittle('list');
  assert.equal(code, 0);
  const lines = out.trim().split('\n');
  assert.match(lines[0]!, /^id\s+kind\s+status\s+model\s+accuracy\.top1\s+agreement\.top1\s+latency\.p50Ms\s+bytes\s+created$/);
  assert.equal(lines.length, 5);
  assert.ok(lines[2]!.startsWith(ids[2]!) && lines[2]!.includes('failed'));
  assert.ok(lines[3]!.startsWith(ids[1]!) && lines[3]!.includes('75.00%') && lines[3]!.includes('98.00%') && lines[3]!.includes('5.00'));
  assert.ok(lines[4]!.startsWith(ids[0]!) && lines[4]!.includes('resnet18.onnx') && lines[4]!.includes('76.00%') && lines[4]!.includes('3.91 KiB'));
});

test('list --json, filters and limit', async () => {
  const all = JSON.parse((await whittle('list', '--json')).out);
  assert.deepEqual(all.runs.map((r: { id: string }) => r.id), [...ids].reverse());
  assert.equal(all.total, 3);
  assert.equal(all.runs[2].metrics['accuracy.top1'], 0.76);
  const evals = JSON.parse((await whittle('list', '--json', '--kind', 'eval', '--limit', '1')).out);
  assert.deepEqual(evals.runs.map((r: { id: string }) => r.id), [ids[1]]);
  assert.equal(evals.total, 2);
  const failed = JSON.parse((await whittle('list', '--json', '--status', 'failed')).out);
  assert.equal(failed.runs[0].error, 'onnxruntime refused node "Conv_0", op Conv');
  assert.match((await whittle('list', '--limit', '1')).out, /showing 1 of 3 runs/);
  assert.match((await whittle('list', '--kind', 'prune')).out, /No runs recorded that match/);
  await assert.rejects(whittle('list', '--kind', 'train'), usageError(/--kind must be one of eval, convert/));
  await assert.rejects(whittle('list', '--limit', '-1'), usageError(/--limit/));
});

test('show takes an id prefix and prints command, environment, inputs, metrics and artifacts', async () => {
  const { out } = await whittle('show', ids[0]!.slice(0, 14));
  assert.match(out, new RegExp(`^run ${ids[0]}: eval, succeeded`));
  assert.match(out, /command\s+whittle eval \/.*resnet18\.onnx/);
  assert.match(out, /environment\s+ep cpu/);
  assert.match(out, /model\s+\/.*resnet18\.onnx\s+12 B\s+sha256 [0-9a-f]{64}/);
  assert.match(out, /accuracy\.top1\s+0\.76/);
  assert.match(out, /predictions\.json\s+7 B\s+sha256 [0-9a-f]{64}/);
  const second = (await whittle('show', ids[1]!)).out;
  assert.match(second, /command\s+whittle eval 'int8 model\.onnx'/);
  const json = JSON.parse((await whittle('show', ids[2]!, '--json')).out);
  assert.equal(json.status, 'failed');
  assert.equal(json.errorCode, 'RUNTIME');
  assert.deepEqual(json.command.slice(0, 1), ['quantize']);
  await assert.rejects(whittle('show'), usageError(/exactly one run id/));
  await assert.rejects(whittle('show', 'rnope'), (e: unknown) => e instanceof WhittleError && e.code === 'NOT_FOUND');
});

test('compare puts metrics side by side with deltas from the first run', async () => {
  const json = JSON.parse((await whittle('compare', ids[0]!, ids[1]!, '--json')).out);
  assert.deepEqual(json.runs, [ids[0], ids[1]]);
  const byKey = Object.fromEntries(json.metrics.map((m: { key: string }) => [m.key, m]));
  assert.deepEqual(byKey['bytes'].values, [4000, 1000]);
  assert.deepEqual(byKey['bytes'].deltas, [0, -3000]);
  assert.deepEqual(byKey['agreement.top1'].values, [null, 0.98]);
  assert.deepEqual(byKey['agreement.top1'].deltas, [null, null]);
  assert.ok(Math.abs(byKey['accuracy.top1'].deltas[1] - -0.01) < 1e-12);
  const { out } = await whittle('compare', ids[0]!, ids[1]!);
  assert.match(out, /latency\.p50Ms\s+10\s+5 \(-5, -50\.00%\)/);
  assert.match(out, /bytes\s+4000\s+1000 \(-3000, -75\.00%\)/);
  await assert.rejects(whittle('compare', ids[0]!), usageError(/two or more run ids/));
});

test('export: json to stdout by default, csv to stdout or a file', async () => {
  const json = JSON.parse((await whittle('export')).out);
  assert.equal(json.runs.length, 3);
  assert.equal(json.runs[2].inputs[0].role, 'model');
  assert.equal(json.runs[2].artifacts[0].name, 'predictions.json');

  const csv = (await whittle('export', '--format', 'csv')).out;
  const rows = csv.trimEnd().split('\r\n');
  assert.equal(rows.length, 4);
  assert.ok(rows[0]!.endsWith('accuracy.top1,accuracy.top5,agreement.top1,bytes,latency.p50Ms'));
  assert.ok(rows[1]!.startsWith(`${ids[2]},quantize,failed,`));
  assert.ok(rows[1]!.includes(`,"onnxruntime refused node ""Conv_0"", op Conv",`), rows[1]);
  assert.ok(rows[2]!.includes(`,whittle eval 'int8 model.onnx',`), 'a cell without comma or quote is left bare');

  const file = join(home, 'out', 'runs.csv');
  const written = JSON.parse((await whittle('export', '--format', 'csv', '-o', file, '--json')).out);
  assert.deepEqual(written, { format: 'csv', path: file, runs: 3 });
  assert.equal(readFileSync(file, 'utf8'), csv);
  await assert.rejects(whittle('export', '--format', 'csv', '--json'), usageError(/needs -o/));
  await assert.rejects(whittle('export', '--format', 'xml'), usageError(/--format must be/));
});

test('export --format mlflow writes mlruns/0/<run-id> folders', async () => {
  const dir = join(home, 'mlflow-out');
  const { out } = await whittle('export', '--format', 'mlflow', '-o', dir, '--kind', 'eval');
  assert.match(out, /wrote 2 runs to .*mlruns\nview them with: mlflow ui --backend-store-uri /);
  for (const id of ids.slice(0, 2)) {
    assert.ok(existsSync(join(dir, 'mlruns', '0', id, 'meta.yaml')));
    assert.match(readFileSync(join(dir, 'mlruns', '0', id, 'metrics', 'bytes'), 'utf8'), /^\d+ \d+ 0\n$/);
  }
  assert.ok(!existsSync(join(dir, 'mlruns', '0', ids[2]!)));
  await assert.rejects(whittle('export', '--format', 'mlflow'), usageError(/give -o FOLDER/));
});

test('through main: bad usage exits 2 with a one-line message, --json gives an error document', async () => {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (t) => void (out += t), stderr: (t) => void (err += t), interactive: false };
  assert.equal(await main(['experiments', 'frobnicate'], io), 2);
  assert.match(err, /^whittle: whittle experiments: unknown subcommand "frobnicate"; expected list, show, compare or export\n$/);
  assert.equal(await main(['experiments', 'show', 'rmissing', '--json'], io), 2);
  assert.equal(JSON.parse(out).error.code, 'NOT_FOUND');
});

test('compare pairs runs that kept their predictions on the same samples: counts and McNemar p', async () => {
  const data = { path: '/data/photos.u8', offset: 0, n: 10, preprocess: 'caffe' };
  const labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const reference = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0];
  const record = async (top1: number[], sample = data) => {
    const store = openStore({ home });
    try {
      const r = await store.startRun({ kind: 'eval', command: ['eval', 'm.onnx'] });
      await r.writeArtifact('predictions.json', (tmp) => writeFile(tmp, JSON.stringify({ version: 1, data: sample, reference: '/m/fp32.onnx', labels, top1, referenceTop1: reference })));
      r.succeed({});
      return r.id;
    } finally {
      store.close();
    }
  };
  const base = await record([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // right on all 10, agrees on 9
  const worse = await record([0, 1, 2, 3, 4, 5, 9, 9, 9, 0]); // right on 6, agrees on 7
  const elsewhere = await record([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], { ...data, offset: 10 }); // other samples: not paired
  const json = JSON.parse((await whittle('compare', base, worse, elsewhere, '--json')).out);
  assert.deepEqual(json.paired, [
    // accuracy: 4 samples only the base gets right; p = 2 · (1/2)^4
    { metric: 'accuracy', run: 1, n: 10, both: 6, onlyBase: 4, onlyRun: 0, neither: 0, difference: -0.4, pValue: 0.125 },
    // agreement: base agrees on 0–8, the other on 0–5 and 9: 3 only the base, 1 only the other; p = 2 · 5/16
    { metric: 'agreement', run: 1, n: 10, both: 6, onlyBase: 3, onlyRun: 1, neither: 0, difference: -0.2, pValue: 0.625 },
  ]);
  const { out } = await whittle('compare', base, worse);
  assert.match(out, /sample by sample against the base, on the same 10 samples/);
  assert.match(out, /#1 accuracy\s+−40\.00 pt: only #1 right on 0, only the base on 4 \(both 6, neither 0\); McNemar p = 0\.125, could be chance/);
  // a run whose predictions file is not ours (the first run's '[1,2,3]') is simply not paired
  assert.deepEqual(JSON.parse((await whittle('compare', ids[0]!, base, '--json')).out).paired, []);
});

test('compare pairs language-model runs window by window: perplexity ratio, interval and sign test', async () => {
  const data = { path: '/data/heldout.npy', offset: 0, n: 6, preprocess: 'none' };
  const record = async (nll: number[]) => {
    const store = openStore({ home });
    try {
      const r = await store.startRun({ kind: 'eval', command: ['eval', 'lm.onnx'] });
      await r.writeArtifact('predictions.json', (tmp) => writeFile(tmp, JSON.stringify({ version: 1, kind: 'next-token', data, nll, tokens: nll.map(() => 63) })));
      r.succeed({});
      return r.id;
    } finally {
      store.close();
    }
  };
  const base = await record([100, 110, 120, 130, 140, 150]);
  const worse = await record([106.3, 116.3, 126.3, 136.3, 146.3, 156.3]); // 0.1 nats per token on every window
  const json = JSON.parse((await whittle('compare', base, worse, '--json')).out);
  assert.deepEqual(json.paired, []);
  assert.equal(json.pairedPerplexity.length, 1);
  const p = json.pairedPerplexity[0];
  assert.deepEqual([p.run, p.windows, p.tokens, p.worse, p.better], [1, 6, 378, 6, 0]);
  assert.ok(Math.abs(p.ratio - Math.exp(0.1)) < 1e-9 && p.low > 1);
  const { out } = await whittle('compare', base, worse);
  assert.match(out, /window by window against the base, on the same 6 windows \(378 predicted tokens; bootstrap over windows\)/);
  assert.match(out, /#1 perplexity \d+\.\d{3} vs \d+\.\d{3}: ×1\.1052 \(95 % interval 1\.1052–1\.1052\), worse on 6 windows, better on 0; sign test p = 0\.031, worse beyond the text's noise/);
});
