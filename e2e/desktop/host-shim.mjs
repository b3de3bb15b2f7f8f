// Runs dist/electron/engine-host.js under plain Node, standing in for Electron's utility process:
// process.parentPort becomes this child's IPC channel (child_process.fork). What the host does with
// it is exactly what it does under Electron, so the bundle, the engine and its job processes can be
// tested on machines without an Electron binary.
//   fork('e2e/desktop/host-shim.mjs', [hostBundle, '--whittle-host=<json>'])
import { pathToFileURL } from 'node:url';

const [hostBundle] = process.argv.splice(2, 1);
const parentPort = {
  on(event, listener) {
    if (event === 'message') process.on('message', (data) => listener({ data }));
    return parentPort;
  },
  postMessage(message) {
    process.send?.(message);
  },
};
Object.defineProperty(process, 'parentPort', { value: parentPort, enumerable: true });
await import(pathToFileURL(hostBundle).href);
