import { inspectModel, type InspectReport } from '../../core/inspect.ts';
import { describeRuntimeFusion, hasQuantizedOps, runtimeCheckWithWarnings } from '../../core/passes/quantize/runtime-check.ts';
import { openModel, sniffFormat } from '../../native-models/formats/index.ts';
import { completeShapesWithRuntime, inspectTfjsModel, readTfjsModel, type TfjsInspectReport } from '../../native-models/formats/tfjs/index.ts';
import { formatBytes, formatCount, parseCommand, requireOne, table, type CliIo } from '../io.ts';

export const summary = 'show a model: inputs, outputs, parameters, ops and a per-layer table';
export const usage = `
whittle inspect MODEL [--json] [--layers all|none]

Reads an ONNX model (with external data) and prints its inputs and outputs, parameter count,
op histogram and a table of the layers that hold weights (shape, parameters, sparsity, dtype).
A quantized ONNX model also gets what onnxruntime's CPU EP runs of it: its integer kernels and any
op left in float between DequantizeLinear and QuantizeLinear (runtimeCheck in the JSON).
A TF.js model.json (layers or graph model) gets one row per float weight, with its stored type
(e.g. "uint8 (quantized)"); output shapes the file leaves open are found by loading it in TF.js.
--json prints the SPEC §3 inspect document.`;

function shape(s: (number | string | null)[] | null): string {
  return s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '?';
}

/** `notes`: lines after the header, before the layer table (the runtime check's). */
export function renderInspect(r: InspectReport, showLayers: boolean, notes: string[] = []): string {
  const out: string[] = [];
  out.push(`${r.path}`);
  out.push(`  format    ONNX, IR ${r.irVersion}, opsets ${Object.entries(r.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}`);
  if (r.producer) out.push(`  producer  ${r.producer}`);
  out.push(`  size      ${formatBytes(r.bytes)}${r.externalDataBytes ? ` (${formatBytes(r.externalDataBytes)} in external data)` : ''}`);
  out.push(`  params    ${formatCount(r.parameters)}${r.sparsity > 0 ? ` (${(r.sparsity * 100).toFixed(1)} % zeros)` : ''}`);
  out.push(`  nodes     ${formatCount(r.nodes)}: ${Object.entries(r.opHistogram).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ×${n}`).join(', ')}`);
  for (const i of r.inputs) out.push(`  input     ${i.name}  ${i.dtype} ${shape(i.shape)}`);
  for (const o of r.outputs) out.push(`  output    ${o.name}  ${o.dtype} ${shape(o.shape)}`);
  for (const [key, value] of Object.entries(r.metadata)) out.push(`  metadata  ${key} = ${value.length > 120 ? `${value.slice(0, 117)}…` : value}`);
  if (r.attention.length) out.push(`  attention ${r.attention.length} block(s): ${r.attention.map((a) => `${a.block} ${a.heads} heads of ${a.headDim}${a.kvHeads ? ` (${a.kvHeads} key/value heads)` : ''}`).join(', ')} (prune --method heads)`);
  out.push(...notes);
  if (showLayers && r.layers.length) {
    out.push('');
    out.push(table(
      ['layer', 'op', 'weight shape', 'dtype', 'params', 'sparsity'],
      r.layers.map((l) => [l.name, l.op, shape(l.shape), l.dtype, l.parameters, `${(l.sparsity * 100).toFixed(1)} %`]),
    ).trimEnd());
  }
  return out.join('\n') + '\n';
}

function histogramLine(h: Record<string, number>): string {
  return Object.entries(h).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ×${n}`).join(', ');
}

export function renderTfjsInspect(r: TfjsInspectReport, showLayers: boolean): string {
  const out: string[] = [];
  const quantized = Object.entries(r.quantized).map(([d, n]) => `${formatCount(n)} ${d}`).join(', ');
  out.push(`${r.path}`);
  out.push(`  format    TF.js ${r.kind} model${r.modelFormat ? ` (${r.modelFormat})` : ''}`);
  if (r.producer) out.push(`  producer  ${r.producer}`);
  out.push(`  size      ${formatBytes(r.bytes)}: model.json + ${r.files.length - 1} shard${r.files.length === 2 ? '' : 's'} holding ${formatBytes(r.weightBytes)} of weights`);
  out.push(`  weights   ${formatCount(r.weights)}${quantized ? `, quantized: ${quantized}` : ', none quantized'}`);
  out.push(`  params    ${formatCount(r.parameters)}${r.sparsity > 0 ? ` (${(r.sparsity * 100).toFixed(1)} % zeros)` : ''}`);
  out.push(`  ${r.kind === 'graph' ? 'nodes ' : 'layers'}    ${formatCount(r.nodes)}: ${histogramLine(r.opHistogram)}`);
  for (const i of r.inputs) out.push(`  input     ${i.name}  ${i.dtype} ${shape(i.shape)}`);
  for (const o of r.outputs) out.push(`  output    ${o.name}  ${o.dtype} ${shape(o.shape)}`);
  for (const w of r.warnings) out.push(`  warning   ${w}`);
  if (showLayers && r.layers.length) {
    out.push('');
    out.push(table(
      ['weight', r.kind === 'graph' ? 'op' : 'layer class', 'shape', 'stored as', 'params', 'sparsity'],
      r.layers.map((l) => [l.weight, l.op, shape(l.shape), l.dtype, l.parameters, `${(l.sparsity * 100).toFixed(1)} %`]),
    ).trimEnd());
  }
  return out.join('\n') + '\n';
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('inspect', argv, { layers: { type: 'string', default: 'all' } });
  const path = requireOne('inspect', positionals, 'MODEL');
  if (sniffFormat(path) === 'tfjs') {
    const model = readTfjsModel(path);
    const report = await completeShapesWithRuntime(inspectTfjsModel(model), model);
    io.stdout(values.json ? JSON.stringify(report) + '\n' : renderTfjsInspect(report, values.layers !== 'none'));
    return 0;
  }
  const model = openModel(path);
  const report = inspectModel(model);
  // a quantized file: what onnxruntime's CPU EP makes of it (integer kernels, float ops between Q/DQ)
  const check = hasQuantizedOps(model) ? await runtimeCheckWithWarnings(model.path!, report.bytes) : null;
  if (values.json) {
    io.stdout(JSON.stringify({ ...report, ...(check?.fusion ? { runtimeCheck: check.fusion } : {}) }) + '\n');
    return 0;
  }
  const notes = check ? [...(check.fusion ? [`  runtime   ${describeRuntimeFusion(check.fusion)}`] : []), ...check.warnings.map((w) => `  warning   ${w}`)] : [];
  const text = renderInspect(report, values.layers !== 'none', notes);
  io.stdout(text);
  return 0;
}
