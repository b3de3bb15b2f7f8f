/** `whittle eval "my model.onnx"`: argv as a user could paste it back into a POSIX shell. */
export function commandLine(argv: readonly string[]): string {
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return ['whittle', ...argv.map(quote)].join(' ');
}
