/**
 * Preprocessing presets (SPEC §4). Each maps a stored value to the model's value per output channel;
 * `bgr` presets also reverse the channel order (sources are RGB). Arithmetic is float64 in the
 * order the usual frameworks write it, then stored as the model's dtype.
 */
import type { PresetName } from './types.ts';

export interface Preset {
  name: PresetName;
  /** Needs exactly three colour channels (per-channel statistics or a channel swap). */
  needsRgb: boolean;
  bgr: boolean;
  /** c is the output channel index (in BGR order for bgr presets). */
  apply(v: number, c: number): number;
}

const TORCH_MEAN = [0.485, 0.456, 0.406];
const TORCH_STD = [0.229, 0.224, 0.225];
/** Caffe's ImageNet means, in the B, G, R order its models take. */
const CAFFE_MEAN_BGR = [104, 117, 123];

const unit = (v: number): number => v / 255;

export function getPreset(name: PresetName): Preset {
  switch (name) {
    case 'none': return { name, needsRgb: false, bgr: false, apply: (v) => v };
    case 'unit': case 'mnist': return { name, needsRgb: false, bgr: false, apply: unit };
    case 'tf': return { name, needsRgb: false, bgr: false, apply: (v) => v / 127.5 - 1 };
    case 'torch': case 'imagenet':
      return { name, needsRgb: true, bgr: false, apply: (v, c) => (v / 255 - TORCH_MEAN[c]!) / TORCH_STD[c]! };
    case 'caffe': return { name, needsRgb: true, bgr: true, apply: (v, c) => v - CAFFE_MEAN_BGR[c]! };
  }
}
