/**
 * Preprocessing presets (SPEC §4). Each maps a stored value to the model's value per output channel;
 * `bgr` presets also reverse the channel order (sources are RGB). Arithmetic is float64 in the
 * order the usual frameworks write it, then stored as the model's dtype. A preset also says how a
 * photo is brought to the model's size (`imageFit`):
 *   resize-crop    short side to size·256/224, centre crop (torchvision's Resize(256)+CenterCrop(224))
 *   centre-square  the largest centred square, resized (AutoML Vision Edge and TF Hub image models)
 *   stretch        the whole photo resized to the input, aspect ratio not kept (nsfwjs)
 */
import type { PresetName } from './types.ts';

export type ImageFit = 'resize-crop' | 'centre-square' | 'stretch';

export interface Preset {
  name: PresetName;
  /** Needs exactly three colour channels (per-channel statistics or a channel swap). */
  needsRgb: boolean;
  bgr: boolean;
  imageFit: ImageFit;
  /** c is the output channel index (in BGR order for bgr presets). */
  apply(v: number, c: number): number;
}

const TORCH_MEAN = [0.485, 0.456, 0.406];
const TORCH_STD = [0.229, 0.224, 0.225];
/** Caffe's ImageNet means, in the B, G, R order its models take. */
const CAFFE_MEAN_BGR = [104, 117, 123];

const unit = (v: number): number => v / 255;
const tf = (v: number): number => v / 127.5 - 1;

export function getPreset(name: PresetName): Preset {
  const plain = { needsRgb: false, bgr: false, imageFit: 'resize-crop' } as const;
  switch (name) {
    case 'none': return { ...plain, name, apply: (v) => v };
    case 'unit': case 'mnist': return { ...plain, name, apply: unit };
    case 'unit-stretch': return { ...plain, name, imageFit: 'stretch', apply: unit };
    case 'tf': return { ...plain, name, apply: tf };
    case 'tf-square': return { ...plain, name, imageFit: 'centre-square', apply: tf };
    case 'torch': case 'imagenet':
      return { ...plain, name, needsRgb: true, apply: (v, c) => (v / 255 - TORCH_MEAN[c]!) / TORCH_STD[c]! };
    case 'caffe': return { ...plain, name, needsRgb: true, bgr: true, apply: (v, c) => v - CAFFE_MEAN_BGR[c]! };
  }
}
