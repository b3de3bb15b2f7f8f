/**
 * Error codes shared by every boundary (CLI exit codes, API replies). Engine code throws
 * WhittleError; boundaries turn it into `{code, message}` and never show a stack trace to a user.
 */
export const ERROR_CODES = [
  'BAD_INPUT', // the file or data given is not what it claims (corrupt, truncated, wrong format)
  'NOT_FOUND', // a file, run, model or artifact that does not exist
  'BAD_USAGE', // wrong flags or arguments
  'UNSUPPORTED', // valid input that this version cannot handle (an op, a dtype, a layout)
  'CANCELLED',
  'RUNTIME', // onnxruntime or another runtime refused or failed
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class WhittleError extends Error {
  readonly code: ErrorCode;
  /** The file the problem is about, when there is one: messages always name it. */
  readonly file: string | undefined;
  constructor(code: ErrorCode, message: string, options?: { file?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WhittleError';
    this.code = code;
    this.file = options?.file;
  }
}

/** Errors from bad input and bad usage exit with 2; everything else that fails exits with 1. */
export function exitCodeFor(code: ErrorCode): number {
  return code === 'BAD_INPUT' || code === 'BAD_USAGE' || code === 'NOT_FOUND' || code === 'UNSUPPORTED' ? 2 : 1;
}

export function badInput(file: string, problem: string): WhittleError {
  return new WhittleError('BAD_INPUT', `${file}: ${problem}`, { file });
}
