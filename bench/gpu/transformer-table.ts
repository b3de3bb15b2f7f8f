/**
 * Perplexity of the transformer test bed (native-models/zoo/transformer) after fp16, int8 (dynamic
 * and static QDQ), weight-only int4 (RTN and GPTQ) and after pruning (magnitude, Wanda, SparseGPT at 50 % and 2:4), each written by
 * the same code as `whittle quantize` / `whittle prune` and evaluated with onnxruntime on the
 * held-back text. Calibration: the test bed's calib.npy (128 windows of 64 characters of the
 * training text = 8,192 token rows per layer).
 *
 *   node --import tsx bench/gpu/transformer-table.ts [--only REGEX] [--json OUT]
 *   node --import tsx bench/gpu/transformer-table.ts --per-layer [--sparsity 0.5]
 *
 * --per-layer: each linear layer pruned alone (the other twelve excluded) by magnitude, Wanda
 * (per row and per layer) and SparseGPT — where on the model each method's choice costs perplexity.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PruneStep, QuantizeStep } from '../../api/recipe.ts';
import { pruneModel } from '../../core/passes/prune/prune-model.ts';
import { prunableWeights } from '../../core/passes/prune/prunable.ts';
import { openModel } from '../../native-models/formats/index.ts';
import { applyQuantizeStep } from '../../core/passes/quantize/quantize-model.ts';
import { runStepOnFile } from '../../core/passes/run-on-file.ts';
import { onnxPerplexity } from '../../native-models/zoo/transformer/export.ts';
import { loadTestBed } from '../../native-models/zoo/transformer/testbed.ts';

interface Row { name: string; kind: 'fp32' | 'quantize' | 'prune'; step?: Record<string, unknown> }

export const ROWS: Row[] = [
  { name: 'fp32', kind: 'fp32' },
  { name: 'fp16', kind: 'quantize', step: { method: 'fp16' } },
  { name: 'int8 dynamic', kind: 'quantize', step: { method: 'dynamic' } },
  { name: 'int8 static (MinMax, per tensor)', kind: 'quantize', step: { method: 'static' } },
  { name: 'int8 static (GPTQ, per channel)', kind: 'quantize', step: { method: 'static', perChannel: true, algorithm: 'gptq' } },
  { name: 'int4 RTN, block 128', kind: 'quantize', step: { method: 'int4', blockSize: 128 } },
  { name: 'int4 RTN, block 32', kind: 'quantize', step: { method: 'int4', blockSize: 32 } },
  { name: 'int4 GPTQ, block 128', kind: 'quantize', step: { method: 'int4', blockSize: 128, algorithm: 'gptq' } },
  { name: 'int4 GPTQ, block 128, act-order', kind: 'quantize', step: { method: 'int4', blockSize: 128, algorithm: 'gptq', actOrder: true } },
  { name: 'int4 GPTQ, block 32', kind: 'quantize', step: { method: 'int4', blockSize: 32, algorithm: 'gptq' } },
  { name: 'magnitude 50 %', kind: 'prune', step: { method: 'magnitude', sparsity: 0.5 } },
  { name: 'Wanda 50 %', kind: 'prune', step: { method: 'wanda', sparsity: 0.5, comparison: 'row' } },
  { name: 'SparseGPT 50 %', kind: 'prune', step: { method: 'sparsegpt', sparsity: 0.5 } },
  { name: 'magnitude 2:4', kind: 'prune', step: { method: 'nm', pattern: '2:4' } },
  { name: 'Wanda 2:4', kind: 'prune', step: { method: 'wanda', pattern: '2:4', comparison: 'row' } },
  { name: 'SparseGPT 2:4', kind: 'prune', step: { method: 'sparsegpt', pattern: '2:4' } },
];

export interface TableResult { name: string; perplexity: number; bytes: number; seconds: number; detail: string }

export async function transformerTable(only: RegExp | null, log: (l: string) => void = () => {}): Promise<TableResult[]> {
  const bed = loadTestBed();
  const T = bed.card.spec.context;
  const dir = mkdtempSync(join(tmpdir(), 'whittle-tf-table-'));
  const results: TableResult[] = [];
  try {
    for (const [i, row] of ROWS.entries()) {
      if (only && !only.test(row.name) && row.kind !== 'fp32') continue;
      const out = join(dir, `${i}.onnx`);
      const t0 = performance.now();
      let path = bed.model;
      let detail = '';
      if (row.kind === 'quantize') {
        const calib = row.step!.algorithm === 'gptq' || row.step!.method === 'static' ? { calib: { path: bed.calibPath } } : {};
        const step = QuantizeStep.parse({ ...row.step, ...calib });
        const { report } = await runStepOnFile({ input: bed.model, output: out, step, seed: 0 }, applyQuantizeStep);
        const d = report.details as { meanErrorGptq?: number; meanErrorRtn?: number } | undefined;
        if (d?.meanErrorGptq != null) detail = `mean layer ‖ΔWX‖²/‖WX‖² ${d.meanErrorGptq.toExponential(2)} (RTN ${d.meanErrorRtn!.toExponential(2)})`;
        path = out;
      } else if (row.kind === 'prune') {
        const calibrated = row.step!.method === 'wanda' || row.step!.method === 'sparsegpt';
        const step = PruneStep.parse({ ...row.step, ...(calibrated ? { calib: { path: bed.calibPath } } : {}) });
        const r = await pruneModel({ input: bed.model, output: out, step, seed: 0 });
        detail = `sparsity ${(r.sparsity * 100).toFixed(1)} %`;
        path = out;
      }
      const seconds = (performance.now() - t0) / 1000;
      const ppl = await onnxPerplexity(path, bed.heldout.inputs, bed.heldout.targets, T);
      const bytes = statSync(path).size;
      results.push({ name: row.name, perplexity: ppl.perplexity, bytes, seconds, detail });
      log(`${row.name.padEnd(34)} perplexity ${ppl.perplexity.toFixed(3)}  ${bytes.toLocaleString('en-US')} B  ${seconds.toFixed(1)} s  ${detail}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

export function markdownTable(results: TableResult[]): string {
  const base = results.find((r) => r.name === 'fp32')?.perplexity ?? NaN;
  const lines = ['| model | held-back perplexity | vs fp32 | file bytes | time | notes |', '|---|---|---|---|---|---|'];
  for (const r of results) {
    lines.push(`| ${r.name} | ${r.perplexity.toFixed(3)} | ${r.name === 'fp32' ? '—' : `${r.perplexity >= base ? '+' : ''}${(((r.perplexity - base) / base) * 100).toFixed(1)} %`} | ${r.bytes.toLocaleString('en-US')} | ${r.seconds.toFixed(1)} s | ${r.detail} |`);
  }
  return lines.join('\n');
}

const PER_LAYER_METHODS: [string, Record<string, unknown>][] = [
  ['magnitude', { method: 'magnitude' }], ['Wanda row', { method: 'wanda', comparison: 'row' }],
  ['Wanda layer', { method: 'wanda', comparison: 'layer' }], ['SparseGPT', { method: 'sparsegpt' }],
];

/** Perplexity with one layer pruned at a time, per method (the other layers excluded). */
export async function perLayerTable(sparsity: number, log: (l: string) => void): Promise<string> {
  const bed = loadTestBed();
  const layers = prunableWeights(openModel(bed.model)).layers.map((w) => w.node.name);
  const dir = mkdtempSync(join(tmpdir(), 'whittle-tf-layers-'));
  const lines = [`| layer alone at ${sparsity * 100} % | ${PER_LAYER_METHODS.map(([n]) => n).join(' | ')} |`, `|---|${PER_LAYER_METHODS.map(() => '---|').join('')}`];
  try {
    for (const layer of layers) {
      const exclude = layers.filter((n) => n !== layer);
      const cells: string[] = [];
      for (const [i, [, m]] of PER_LAYER_METHODS.entries()) {
        const out = join(dir, `${i}.onnx`);
        const calib = m.method === 'magnitude' ? {} : { calib: { path: bed.calibPath } };
        await pruneModel({ input: bed.model, output: out, step: PruneStep.parse({ ...m, sparsity, exclude, ...calib }), seed: 0 });
        cells.push((await onnxPerplexity(out, bed.heldout.inputs, bed.heldout.targets, bed.card.spec.context)).perplexity.toFixed(3));
      }
      lines.push(`| ${layer} | ${cells.join(' | ')} |`);
      log(lines[lines.length - 1]!);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { only: { type: 'string' }, json: { type: 'string' }, 'per-layer': { type: 'boolean' }, sparsity: { type: 'string', default: '0.5' } } });
  if (values['per-layer']) {
    console.log(await perLayerTable(Number(values.sparsity), (l) => console.error(l)));
    process.exit(0);
  }
  const only = values.only ? new RegExp(values.only, 'i') : null;
  const results = await transformerTable(only, (l) => console.error(l));
  console.log(markdownTable(results));
  if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 1) + '\n');
}
