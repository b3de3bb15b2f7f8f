import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { test } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { PruneStep, QuantizeStep, Recipe } from '../../api/recipe.ts';
import { JobSpec, type JobSpecParsed } from '../../api/schemas.ts';
import type { RunDetail } from '../store/types.ts';
import { parseChannelLine } from './channel.ts';
import { planJob, PRUNE_FLAGS, QUANTIZE_FLAGS } from './job-plan.ts';
import { recipeFromRun } from './recipe-from-run.ts';

const DIR = '/home/u/.whittle/jobs/j1';
const plan = (spec: unknown, modelFormat: 'onnx' | 'tfjs' = 'onnx') => planJob(JobSpec.parse(spec) as JobSpecParsed, { jobDir: DIR, modelFormat });

test('every step field reaches the command line (or is said apart), so no setting is lost on the way to a job', () => {
  // method and calib have their own flags, symmetric is --symmetric/--asymmetric, reduceRange --reduce-range on|off, a plan runs as a recipe
  const apart = new Set(['method', 'calib', 'symmetric', 'reduceRange', 'layerSparsity']);
  for (const [schema, flags] of [[QuantizeStep, QUANTIZE_FLAGS], [PruneStep, PRUNE_FLAGS]] as const) {
    const missing = Object.keys(schema.shape).filter((field) => !apart.has(field) && !(field in flags));
    assert.deepEqual(missing, [], `fields without a flag: ${missing.join(', ')}`);
  }
  const argv = plan({ kind: 'quantize', model: '/m/a.onnx', step: { method: 'static', calib: { path: '/d/x.npy' }, biasCorrection: true } }).argv;
  assert.ok(argv.includes('--bias-correction'), argv.join(' '));
  const off = plan({ kind: 'quantize', model: '/m/a.onnx', step: { method: 'dynamic', reduceRange: false } }).argv;
  assert.deepEqual(off.slice(off.indexOf('--reduce-range'), off.indexOf('--reduce-range') + 2), ['--reduce-range', 'off']);
  assert.ok(!plan({ kind: 'quantize', model: '/m/a.onnx', step: { method: 'dynamic' } }).argv.includes('--reduce-range'), 'unset: the CLI decides (auto)');
});

test('quantize: only the values that differ from the defaults become flags', () => {
  assert.deepEqual(plan({ kind: 'quantize', model: '/m/mnist.onnx', step: { method: 'dynamic' } }).argv,
    ['quantize', '/m/mnist.onnx', '-o', `${DIR}/mnist.dynamic.onnx`, '--method', 'dynamic', '--ep', 'cpu', '--seed', '0', '--json']);
  const p = plan({
    kind: 'quantize', model: '/m/sq.onnx', ep: 'auto', seed: 3,
    step: {
      method: 'static', calib: { path: '/d/imagenet-100', preprocess: 'caffe', limit: 64 }, calibration: 'percentile', percentile: 99.9,
      perChannel: true, activationType: 'int8', weightType: 'uint8', symmetric: false, exclude: ['conv1', 'Gemm'], keepIoTypes: true, includeConv: true, blockSize: 64, format: 'dq',
    },
  });
  assert.equal(p.title, 'quantize static percentile · sq.onnx');
  assert.deepEqual(p.files, []);
  assert.deepEqual(p.argv, ['quantize', '/m/sq.onnx', '-o', `${DIR}/sq.static.onnx`, '--method', 'static',
    '--calib', '/d/imagenet-100', '--preprocess', 'caffe', '--samples', '64',
    '--calibration', 'percentile', '--percentile', '99.9', '--per-channel', '--activation-type', 'int8', '--weight-type', 'uint8',
    '--block-size', '64', '--format', 'dq', '--exclude', 'conv1,Gemm', '--keep-io-types', '--include-conv', '--asymmetric',
    '--ep', 'auto', '--seed', '3', '--json']);
});

test('prune: every step field has its flag; samples wins over the data limit', () => {
  const p = plan({
    kind: 'prune', model: '/m/mnist.onnx',
    step: { method: 'wanda', sparsity: 0.7, scope: 'global', pattern: '2:4', calib: { path: '/d/t10k.gz', preprocess: 'mnist', limit: 9 }, samples: 128,
      roundTo: 16, importance: 'l1', comparison: 'row', sequential: true, biasCorrection: true, exclude: ['a'], protectFirstLast: true, minParameters: 100 },
  });
  assert.equal(p.title, 'prune wanda 70 % · mnist.onnx');
  assert.deepEqual(p.argv, ['prune', '/m/mnist.onnx', '-o', `${DIR}/mnist.wanda.onnx`, '--method', 'wanda', '--calib', '/d/t10k.gz', '--preprocess', 'mnist',
    '--sparsity', '0.7', '--scope', 'global', '--pattern', '2:4', '--samples', '128', '--round-to', '16', '--importance', 'l1', '--comparison', 'row',
    '--sequential', '--bias-correction', '--exclude', 'a', '--protect-first-last', '--min-parameters', '100', '--ep', 'cpu', '--seed', '0', '--json']);
});

test('a step the flags cannot express runs as a one-step recipe', () => {
  const p = plan({ kind: 'quantize', model: '/m/sq.onnx', step: { method: 'static', calib: { path: '/d/img', offset: 100, layout: 'nhwc' } } });
  assert.deepEqual(p.argv, ['run', `${DIR}/recipe.json`, '--json']);
  const recipe = Recipe.parse(JSON.parse(p.files[0]!.content));
  assert.equal(recipe.model, '/m/sq.onnx');
  assert.deepEqual('quantize' in recipe.steps[0]! && recipe.steps[0].quantize.calib, { path: '/d/img', offset: 100, layout: 'nhwc' });
  assert.equal(plan({ kind: 'prune', model: '/m/a.onnx', step: { method: 'magnitude', exclude: ['Conv(a,b)'] } }).argv[0], 'run');
  // a per-layer plan: the recipe carries it (the CLI reads plans from files)
  const planned = plan({ kind: 'prune', model: '/m/a.onnx', step: { method: 'magnitude', layerSparsity: { Conv_0: 0.3, MatMul_1: 0 } } });
  assert.equal(planned.argv[0], 'run');
  assert.equal(planned.title, 'prune magnitude (per-layer plan) · a.onnx');
  const step = Recipe.parse(JSON.parse(planned.files[0]!.content)).steps[0]!;
  assert.deepEqual('prune' in step && step.prune.layerSparsity, { Conv_0: 0.3, MatMul_1: 0 });
});

test('eval, analyze, recipe and sleep', () => {
  assert.deepEqual(plan({ kind: 'eval', model: '/m/a.onnx', data: { path: '/d/x', preprocess: 'torch', limit: 10, offset: 5, size: 224, layout: 'nchw' }, reference: '/m/b.onnx', runs: 5 }).argv,
    ['eval', '/m/a.onnx', '--data', '/d/x', '--preprocess', 'torch', '--limit', '10', '--offset', '5', '--size', '224', '--layout', 'nchw', '--reference', '/m/b.onnx', '--runs', '5', '--ep', 'cpu', '--json']);
  assert.deepEqual(plan({ kind: 'eval', model: '/m/a.onnx', exactInt8: true }).argv, ['eval', '/m/a.onnx', '--exact-int8', '--ep', 'cpu', '--json']);
  assert.deepEqual(plan({ kind: 'analyze', model: '/m/a.onnx', for: 'prune', data: { path: '/d/x', limit: 8 }, budgetRatio: 0.4 }).argv,
    ['analyze', '/m/a.onnx', '--for', 'prune', '--data', '/d/x', '--limit', '8', '--budget-ratio', '0.4', '--ep', 'cpu', '--json']);
  assert.deepEqual(plan({ kind: 'analyze', model: '/m/a.onnx', for: 'quantize', data: { path: '/d/x', limit: 50, offset: 50 }, holdout: 25 }).argv,
    ['analyze', '/m/a.onnx', '--for', 'quantize', '--data', '/d/x', '--limit', '50', '--offset', '50', '--holdout', '25', '--ep', 'cpu', '--json']);
  assert.throws(() => plan({ kind: 'analyze', model: '/m/a.onnx', for: 'quantize', data: { path: '/d/x', size: 224 } }),
    (err: unknown) => err instanceof WhittleError && err.code === 'BAD_USAGE' && /data\.size/.test(err.message));
  const r = plan({ kind: 'recipe', recipe: { name: 'small', model: '/m/a.onnx', steps: [{ prune: { method: 'magnitude' } }, { quantize: { method: 'dynamic' } }] } });
  assert.equal(r.title, 'small: prune magnitude + quantize dynamic · a.onnx');
  assert.equal(Recipe.parse(JSON.parse(r.files[0]!.content)).steps.length, 2);
  assert.deepEqual(plan({ kind: 'sleep', seconds: 2, crash: 'exit' }).argv, ['__sleep', '2', '--json', '--crash', 'exit']);
});

test('demo jobs run `whittle demo NAME … --json` with the flags the command has', async () => {
  assert.deepEqual(plan({ kind: 'demo', demo: 'lottery' }).argv, ['demo', 'lottery', '--json']);
  assert.equal(plan({ kind: 'demo', demo: 'lottery' }).title, 'demo lottery ticket on digits');
  const life = plan({ kind: 'demo', demo: 'game-of-life', seeds: 3, steps: 1, multiplier: 4, maxEpochs: 20, prune: false });
  assert.deepEqual(life.argv, ['demo', 'game-of-life', '--seeds', '3', '--steps', '1', '--multiplier', '4', '--max-epochs', '20', '--no-prune', '--json']);
  assert.equal(life.title, 'demo Game of Life (--seeds 3 --steps 1 --multiplier 4 --max-epochs 20 --no-prune)');
  assert.deepEqual(plan({ kind: 'demo', demo: 'game-of-life', prune: true }).argv, ['demo', 'game-of-life', '--json']);
  const lottery = plan({ kind: 'demo', demo: 'lottery', seeds: 2, rounds: 4, epochs: 5, data: '/d/digits' });
  assert.deepEqual(lottery.argv, ['demo', 'lottery', '--seeds', '2', '--rounds', '4', '--epochs', '5', '--data', '/d/digits', '--json']);
  // every flag planned is one the command's usage names, on the line of its experiment
  const { usage } = await import('../../cli/commands/demo.ts');
  const lines = usage.trim().split('\n');
  for (const p of [life, lottery]) {
    const line = lines.find((l) => l.startsWith(`whittle demo ${p.argv[1]} `))!;
    for (const a of p.argv.filter((x) => x.startsWith('--'))) assert.ok(line.includes(`[${a}`), `${a} in "${line}"`);
  }
  // an option of the other experiment, or an unknown one, is refused before anything runs
  assert.equal(JobSpec.safeParse({ kind: 'demo', demo: 'lottery', steps: 2 }).success, false);
  assert.equal(JobSpec.safeParse({ kind: 'demo', demo: 'game-of-life', rounds: 2 }).success, false);
  assert.equal(JobSpec.safeParse({ kind: 'demo', demo: 'game-of-life', steps: 6 }).success, false);
  assert.equal(JobSpec.safeParse({ kind: 'demo', demo: 'mnist' }).success, false);
  assert.equal(JobSpec.safeParse({ kind: 'demo', demo: 'lottery', quick: true }).success, false);
});

test('TF.js models write a folder named after the model', () => {
  assert.equal(plan({ kind: 'quantize', model: '/f/flowers/model.json', step: { method: 'fp16' } }, 'tfjs').argv[3], `${DIR}/flowers.fp16`);
});

test('a recorded quantize or prune command reads back as the recipe that redoes it', () => {
  const specs = [
    { kind: 'quantize', model: '/m/sq.onnx', seed: 4, step: { method: 'static', calib: { path: '/d/img', preprocess: 'caffe' }, samples: 32, calibration: 'entropy', perChannel: true, symmetric: true, exclude: ['x', 'y'] } },
    { kind: 'prune', model: '/m/sq.onnx', step: { method: 'nm', pattern: '2:4', minParameters: 10 } },
    // every boolean and number flag reads back as itself (a boolean read as a string flag would eat the next flag)
    { kind: 'quantize', model: '/m/sq.onnx', step: { method: 'static', calib: { path: '/d/img' }, calibration: 'percentile', percentile: 99.99, symmetricRanges: true, bins: 4096, algorithm: 'gptq', actOrder: true, percdamp: 0.05, perChannel: true } },
    { kind: 'quantize', model: '/m/sq.onnx', step: { method: 'static', calib: { path: '/d/img' }, movingAverage: true } },
  ];
  for (const raw of specs) {
    const spec = JobSpec.parse(raw) as Extract<JobSpecParsed, { kind: 'quantize' | 'prune' }>;
    const argv = planJob(spec, { jobDir: DIR }).argv;
    const run = {
      id: 'r1', kind: spec.kind, command: argv, recipe: null,
      inputs: [{ role: 'model', path: spec.model, sha256: null, bytes: null }, ...(spec.step.calib ? [{ role: 'calib', path: spec.step.calib.path, sha256: null, bytes: null }] : [])],
    } as unknown as RunDetail;
    const recipe = recipeFromRun(run)!;
    assert.ok(recipe, `${spec.kind}: no recipe`);
    assert.equal(recipe.model, spec.model);
    assert.equal(recipe.seed, spec.seed);
    const step = recipe.steps[0]!;
    assert.deepEqual('quantize' in step ? step.quantize : step.prune, spec.step);
  }
  assert.equal(recipeFromRun({ id: 'r2', kind: 'eval', command: ['eval', 'm.onnx'], recipe: null, inputs: [] } as unknown as RunDetail), null);
});

test('the progress channel accepts its three messages and nothing else', () => {
  assert.deepEqual(parseChannelLine('{"type":"progress","phase":"calibrate","done":3,"total":9}'), { type: 'progress', phase: 'calibrate', done: 3, total: 9 });
  assert.deepEqual(parseChannelLine('{"type":"run","runId":"r1"}'), { type: 'run', runId: 'r1' });
  for (const bad of ['', 'not json', '{"type":"run"}', '{"type":"log","level":"fatal","message":"x"}', 'null', '[1]']) assert.equal(parseChannelLine(bad), null, bad);
});

test('analyze with the recipe builder\'s steps: their settings as a recipe file (--recipe), without their calibration data', () => {
  const p = plan({
    kind: 'analyze', model: '/m/a.onnx', for: 'quantize', data: { path: '/d/x', limit: 32 },
    steps: [{ quantize: { method: 'static', calibration: 'entropy', perChannel: true, algorithm: 'gptq', calib: { path: '/elsewhere/calib' } } }],
  });
  const at = p.argv.indexOf('--recipe');
  assert.ok(at > 0, p.argv.join(' '));
  assert.equal(basename(p.argv[at + 1]!), p.files[0]!.name);
  const recipe = Recipe.parse(JSON.parse(p.files[0]!.content));
  assert.equal(recipe.model, '/m/a.onnx');
  const step = 'quantize' in recipe.steps[0]! ? recipe.steps[0].quantize : null;
  assert.deepEqual([step?.calibration, step?.perChannel, step?.algorithm, step?.calib], ['entropy', true, 'gptq', undefined]);
  assert.equal(plan({ kind: 'analyze', model: '/m/a.onnx', for: 'prune', data: { path: '/d/x' } }).files.length, 0);
});
