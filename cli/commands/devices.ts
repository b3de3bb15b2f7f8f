import { WhittleError } from '../../api/errors.ts';
import { listDevices, type DeviceReport } from '../../native-models/runtimes/devices.ts';
import { parseCommand, table, type CliIo } from '../io.ts';

export const summary = 'execution providers and GPU adapters actually usable here';

export const usage = `
whittle devices [--json]

Lists the onnxruntime execution providers (cpu, webgpu, cuda) and TF.js backends that can run
models on this machine, the GPU adapters WebGPU sees, and for each one that cannot be used, why
and how to fix it. GPUs are probed in a child process, so a broken driver cannot hang this command.
`;

/** Splits "a (x; y); b" at top-level "; " so each blocker of a long reason gets its own line. */
function reasonParts(reason: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < reason.length; i++) {
    const c = reason[i];
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (c === ';' && depth === 0 && reason[i + 1] === ' ') { parts.push(reason.slice(start, i)); start = i + 2; }
  }
  parts.push(reason.slice(start));
  return parts;
}

export function renderDevices(report: DeviceReport): string {
  const rows = report.providers.map((p) => [p.name, p.runtime, p.available ? 'yes' : 'no', p.device ?? p.version ?? '']);
  const lines = ['Execution providers' + (report.onnxruntimeNode ? ` (onnxruntime-node ${report.onnxruntimeNode})` : ''), ''];
  lines.push(table(['provider', 'runtime', 'usable', 'device / version'], rows));
  const reasons = report.providers.filter((p) => !p.available && p.reason);
  for (const p of reasons) {
    const [first, ...rest] = reasonParts(p.reason!);
    lines.push(`${p.name}: ${first}`, ...rest.map((r) => ' '.repeat(p.name.length + 2) + r));
  }
  if (report.int8) {
    lines.push('', report.int8.saturates
      ? `int8 on this CPU: onnxruntime's u8×s8 kernels saturate 8-bit weights (${report.int8.detail}); static and dynamic int8 weights default to 7 bits (--reduce-range)`
      : `int8 on this CPU: onnxruntime's int8 kernels are exact (${report.int8.detail}); int8 weights keep 8 bits`);
  }
  lines.push('', 'GPU adapters (WebGPU)', '');
  if (report.adapters.length === 0) {
    lines.push(`none: ${report.adaptersReason ?? 'no adapter found'}`);
    lines.push('GPTQ, SparseGPT and magnitude thresholds run on the CPU (--ep auto says so; --ep webgpu is an error)');
  } else {
    const adapterRows = report.adapters.map((a) => [a.backend, a.vendor || '?', a.name + (a.fallback ? ' (software)' : '')]);
    lines.push(table(['backend', 'vendor', 'name'], adapterRows).trimEnd());
  }
  return lines.join('\n') + '\n';
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('devices', argv, {});
  if (positionals.length > 0) throw new WhittleError('BAD_USAGE', `whittle devices: takes no arguments, got "${positionals.join(' ')}"`);
  const report = await listDevices();
  io.stdout(values.json ? JSON.stringify(report) + '\n' : renderDevices(report));
  return 0;
}
