// Module resolution hook: `import … from 'electron'` gets the stand-in beside this file.
const FAKE = new URL('./electron.ts', import.meta.url).href;
export async function resolve(specifier, context, next) {
  if (specifier === 'electron') return { url: FAKE, shortCircuit: true };
  return next(specifier, context);
}
