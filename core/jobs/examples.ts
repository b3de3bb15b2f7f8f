import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ExampleModel } from '../../api/schemas.ts';
import type { DataRef } from '../../api/recipe.ts';

type RelativeData = Omit<DataRef, 'path'> & { path: string };

interface ExampleDef {
  id: string;
  title: string;
  description: string;
  /**
   * Where its files are: the fixtures folder (../shared/fixtures beside the checkout), or the
   * models this project builds itself (native-models/zoo in the checkout).
   */
  root: 'fixtures' | 'zoo';
  /** Relative to its root. */
  model: string;
  data: RelativeData | null;
  /** Calibration data when it is not `data` (a held-back split evaluates, a training split calibrates). */
  calibration?: RelativeData;
}

/** The fixtures the Library offers, each with the data and preprocessing it was measured with (MANIFEST.md). */
const EXAMPLES: ExampleDef[] = [
  {
    id: 'mnist', title: 'MNIST CNN', root: 'fixtures', model: 'mnist/mnist.onnx',
    description: 'A small convolutional digit classifier (5,994 parameters), with the 10,000 MNIST test images: 98.90 % top-1.',
    data: { path: 'mnist/t10k-images-idx3-ubyte.gz', preprocess: 'mnist' },
  },
  {
    id: 'squeezenet-fp32', root: 'fixtures', title: 'SqueezeNet 1.0 (fp32)', model: 'squeezenet/squeezenet1.0_fp32.onnx',
    description: 'ImageNet classifier, 1.24 M parameters, with 100 real ImageNet photos (Caffe preprocessing): 62 % top-1.',
    data: { path: 'imagenet-100', preprocess: 'caffe' },
  },
  {
    id: 'shufflenet-int8', root: 'fixtures', title: 'ShuffleNet-v2 (int8)', model: 'shufflenet-int8/shufflenet-v2-12-int8.onnx',
    description: 'An already-quantized ImageNet model (QLinearConv), with 100 ImageNet photos (Torch preprocessing).',
    data: { path: 'imagenet-100', preprocess: 'torch' },
  },
  {
    id: 'iris', root: 'fixtures', title: 'Iris MLP', model: 'iris/iris_network.onnx',
    description: 'A tiny multilayer perceptron on the 150 iris flowers: 98.0 %.',
    data: { path: 'iris/iris_X.npy' },
  },
  {
    id: 'tfjs-nsfwjs-mobilenet-v2', root: 'fixtures', title: 'MobileNetV2 (TF.js layers, uint8 weights)', model: 'tfjs-nsfwjs-mobilenet-v2/model.json',
    description: 'A 5-class TF.js layers model whose every weight is uint8-quantized, with ImageNet photos (RGB/255).',
    data: { path: 'imagenet-100', preprocess: 'unit' },
  },
  {
    id: 'tfjs-automl-flowers', root: 'fixtures', title: 'AutoML flowers (TF.js graph)', model: 'tfjs-automl-flowers/model.json',
    description: 'A 5-class flower classifier (MnasNet-0.35) as a TF.js graph model, with one daisy photo.',
    data: { path: 'tfjs-automl-flowers/daisy.jpg', preprocess: 'tf' },
  },
  {
    // the transformer test bed (issue 6): trained and exported by the project, 6.655 perplexity
    id: 'char-transformer', root: 'zoo', title: 'Character transformer (decoder-only LM)', model: 'transformer/char-transformer.onnx',
    description: 'A 2-layer, 4-head decoder-only language model (300 k parameters) that Whittle trains on Debian\'s licence texts, with held-back text: perplexity 6.655, next-character top-1 50.4 %. Calibrates on a training split.',
    data: { path: 'transformer/heldout.npy' },
    calibration: { path: 'transformer/calib.npy' },
  },
];

/** The examples with absolute paths; `available` is false where a file is missing from this install. */
export function listExamples(roots: { fixtures: string; zoo: string }): ExampleModel[] {
  return EXAMPLES.map((e) => {
    const root = roots[e.root];
    const path = join(root, e.model);
    const data = e.data ? { ...e.data, path: join(root, e.data.path) } : null;
    const calibration = e.calibration ? { ...e.calibration, path: join(root, e.calibration.path) } : null;
    const files = [path, data?.path, calibration?.path].filter((f): f is string => f !== undefined);
    return { id: e.id, title: e.title, description: e.description, path, data, calibration, available: files.every((f) => existsSync(f)) };
  });
}
