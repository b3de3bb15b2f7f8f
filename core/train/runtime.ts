import { loadTf, type TfRuntime } from '../../native-models/runtimes/tfjs.ts';
import { installFastConvFilterGradient } from './cpu-conv-gradient.ts';

/**
 * TF.js for training. Convolutional models get the runtime loadTf picks for training (SPEC §7;
 * never wasm, which has no convolution gradients), with the cpu backend's slow filter gradient
 * replaced by an exact, faster one when the pure-JS backend is what we got. Models of dense layers
 * only (`convolutions: false`) may also train on the wasm backend, about 4× faster than the pure-JS
 * one for an MLP. TF.js has one backend per process: loading the other kind later switches it.
 */
export async function loadTrainingTf(options: { convolutions?: boolean } = {}): Promise<TfRuntime> {
  if (options.convolutions === false) return loadTf();
  const runtime = await loadTf({ training: true });
  if (runtime.backend === 'cpu') installFastConvFilterGradient(runtime.tf);
  return runtime;
}
