import { inspectModel, type InspectReport } from '../../core/inspect.ts';
import { openModel } from '../../native-models/formats/index.ts';
import { formatBytes, formatCount, parseCommand, requireOne, table, type CliIo } from '../io.ts';

export const summary = 'show a model: inputs, outputs, parameters, ops and a per-layer table';
export const usage = `
whittle inspect MODEL [--json] [--layers all|none]

Reads an ONNX model (with external data) and prints its inputs and outputs, parameter count,
op histogram and a table of the layers that hold weights (shape, parameters, sparsity, dtype).
--json prints the SPEC §3 inspect document.`;

function shape(s: (number | string | null)[] | null): string {
  return s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '?';
}

export function renderInspect(r: InspectReport, showLayers: boolean): string {
  const out: string[] = [];
  out.push(`${r.path}`);
  out.push(`  format    ONNX, IR ${r.irVersion}, opsets ${Object.entries(r.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}`);
  if (r.producer) out.push(`  producer  ${r.producer}`);
  out.push(`  size      ${formatBytes(r.bytes)}${r.externalDataBytes ? ` (${formatBytes(r.externalDataBytes)} in external data)` : ''}`);
  out.push(`  params    ${formatCount(r.parameters)}${r.sparsity > 0 ? ` (${(r.sparsity * 100).toFixed(1)} % zeros)` : ''}`);
  out.push(`  nodes     ${formatCount(r.nodes)}: ${Object.entries(r.opHistogram).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ×${n}`).join(', ')}`);
  for (const i of r.inputs) out.push(`  input     ${i.name}  ${i.dtype} ${shape(i.shape)}`);
  for (const o of r.outputs) out.push(`  output    ${o.name}  ${o.dtype} ${shape(o.shape)}`);
  if (showLayers && r.layers.length) {
    out.push('');
    out.push(table(
      ['layer', 'op', 'weight shape', 'dtype', 'params', 'sparsity'],
      r.layers.map((l) => [l.name, l.op, shape(l.shape), l.dtype, l.parameters, `${(l.sparsity * 100).toFixed(1)} %`]),
    ).trimEnd());
  }
  return out.join('\n') + '\n';
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('inspect', argv, { layers: { type: 'string', default: 'all' } });
  const path = requireOne('inspect', positionals, 'MODEL');
  const report = inspectModel(openModel(path));
  if (values.json) io.stdout(JSON.stringify(report) + '\n');
  else io.stdout(renderInspect(report, values.layers !== 'none'));
  return 0;
}
