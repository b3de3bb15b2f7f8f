// The engine host: runs in Electron's utility process (utilityProcess.fork from main), so the
// engine, its store and its job processes live outside the main process (SPEC §2). It talks to
// main only through process.parentPort; everything it does is in serve.ts.
import { createEngine } from '../../core/jobs/engine.ts';
import { parseHostConfig } from '../shared/host-protocol.ts';
import { serveEngine, startFailureMessage } from './serve.ts';

const port = process.parentPort;
if (!port) {
  process.stderr.write('whittle engine host: run me with utilityProcess.fork from the Electron main process\n');
  process.exit(2);
}

// Anything a library starts with process.execPath (the Electron binary) must behave as node.
process.env.ELECTRON_RUN_AS_NODE = '1';

const config = parseHostConfig(process.argv);
try {
  if (typeof config === 'string') throw new Error(config);
  const engine = await createEngine({
    mode: 'electron',
    readableRoots: null,
    jobCommand: config.jobCommand,
    jobEnv: { ELECTRON_RUN_AS_NODE: '1' },
    ...(config.examplesRoot ? { examplesRoot: config.examplesRoot } : {}),
  });
  serveEngine(port, engine, (code) => process.exit(code));
} catch (err) {
  port.postMessage({ type: 'fatal', message: startFailureMessage(err) });
  process.stderr.write(`whittle engine host: ${String((err as Error)?.stack ?? err)}\n`);
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100);
}
