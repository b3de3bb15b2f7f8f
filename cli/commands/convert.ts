import { WhittleError } from '../../api/errors.ts';
import { convertModel } from '../../core/passes/convert/resave.ts';
import { formatBytes, numberOption, parseCommand, requireOne, type CliIo } from '../io.ts';
import { recordCommand } from '../record.ts';

export const summary = 're-save a model, to or from external data';
export const usage = `
whittle convert MODEL -o OUT [--external-data] [--size-threshold BYTES] [--location NAME] [--json] [--no-record]

Reads MODEL and writes it again: with --external-data, every tensor of at least --size-threshold
bytes (default 1024) goes to OUT.data (or --location) at 4 KiB-aligned offsets; without it, external
data is brought back inline (models over 2 GiB stay external automatically).`;

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('convert', argv, {
    output: { type: 'string', short: 'o' },
    'external-data': { type: 'boolean' },
    'size-threshold': { type: 'string' },
    location: { type: 'string' },
  });
  const input = requireOne('convert', positionals, 'MODEL');
  if (!values.output) throw new WhittleError('BAD_USAGE', 'whittle convert: -o OUT is required');
  const sizeThreshold = numberOption('convert', 'size-threshold', values['size-threshold'], { min: 0, integer: true });
  const report = await recordCommand({
    kind: 'convert',
    argv: ['convert', ...argv],
    inputs: [{ role: 'model', path: input }],
    record: !values['no-record'],
    work: async () => convertModel({ input, output: values.output!, externalData: values['external-data'] ? true : 'auto', sizeThreshold, location: values.location }),
    artifacts: (r) => [r.output, ...(r.externalDataPath ? [r.externalDataPath] : [])],
  });
  if (values.json) io.stdout(JSON.stringify(report) + '\n');
  else {
    io.stdout(`wrote ${report.output} (${formatBytes(report.bytes)})\n`);
    if (report.externalDataPath) io.stdout(`      ${report.externalDataPath} (${formatBytes(report.externalDataBytes)}, ${report.externalTensors} tensors${report.autoExternal ? '; chosen automatically: the model is over 2 GiB' : ''})\n`);
  }
  return 0;
}
