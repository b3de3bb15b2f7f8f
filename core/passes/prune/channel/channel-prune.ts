import { WhittleError } from '../../../../api/errors.ts';
import type { Model } from '../../../../native-models/ir/model.ts';
import { modelStats } from '../../../../native-models/ir/stats.ts';
import { tensorBytes, type Pass, type PassContext, type PassReport } from '../../pass.ts';
import { isExcluded, NameAllocator } from '../../quantize/graph-edit.ts';
import { analyzeChannels } from './analyze.ts';
import { applyEdits, refreshShapes } from './rewrite.ts';
import { activationImportance, reconstructConsumers, type ReconstructedLayer, type ReconstructOptions } from './reconstruct.ts';
import { chooseChannels, groupImportance, type Importance } from './select.ts';

/**
 * Structured channel pruning (SPEC §8, issue 4 item 3): removes whole output channels of Conv and
 * Gemm layers together with everything coupled to them, so the written model is really smaller.
 */
export interface ChannelPruneOptions {
  /** Fraction of each prunable group's channels removed (group scope) or of all prunable channels (global), in [0, 1). */
  sparsity: number;
  /** Kept counts are multiples of this (default 8); a group is never cut below it. */
  roundTo?: number;
  /** Weight norms ('l1', 'l2'), or 'activation': the output energy each channel gives the layers reading it, on the `reconstruct` data (reconstruct.ts). */
  importance?: Importance | 'activation';
  /** Multiply importance by |γ/√(σ²+ε)| of a following BatchNormalization (default true). */
  bnScale?: boolean;
  /** Node names, output names or op types whose groups are left whole. */
  exclude?: string[];
  /** 'group' (default): every group loses `sparsity`; 'global': channels ranked across groups. */
  scope?: 'group' | 'global';
  /** Per-group sparsity keyed by the name (or output) of any layer in the group. */
  groups?: Record<string, number>;
  /** Calibration data: the layers that read pruned channels are refitted by least squares (reconstruct.ts). */
  reconstruct?: ReconstructOptions;
}

export interface GroupReport {
  /** Layers whose output channels form the group (Conv/Gemm producers). */
  producers: string[];
  /** Other layers sliced with it (BatchNormalization, depthwise Conv, consumers, constants). */
  members: string[];
  channelsBefore: number;
  channelsAfter: number;
}

export interface PinnedReport {
  producers: string[];
  channels: number;
  reasons: string[];
}

export interface ChannelPruneDetails {
  groups: GroupReport[];
  pinned: PinnedReport[];
  prunableChannels: number;
  removedChannels: number;
  /** removed / prunable, after rounding. */
  achievedSparsity: number;
  parametersBefore: number;
  parametersAfter: number;
  /** With calibration data: each refitted layer and its output error before/after the refit. */
  reconstruction?: { samples: number; layers: ReconstructedLayer[] };
}

function checkOptions(o: ChannelPruneOptions): void {
  const bad = (m: string) => new WhittleError('BAD_USAGE', m);
  if (!(o.sparsity >= 0 && o.sparsity < 1)) throw bad(`sparsity must be in [0, 1), got ${o.sparsity}`);
  if (o.roundTo !== undefined && !(Number.isInteger(o.roundTo) && o.roundTo >= 1)) throw bad(`roundTo must be a positive integer, got ${o.roundTo}`);
  for (const [k, v] of Object.entries(o.groups ?? {})) if (!(v >= 0 && v < 1)) throw bad(`sparsity of group ${k} must be in [0, 1), got ${v}`);
  if (o.importance === 'activation' && !o.reconstruct) throw bad('activation importance is measured on calibration data (--calib DATA)');
}

export const channelPrunePass: Pass<ChannelPruneOptions> = {
  name: 'prune-channels',
  async run(model: Model, options: ChannelPruneOptions, ctx: PassContext): Promise<PassReport> {
    checkOptions(options);
    const roundTo = options.roundTo ?? 8;
    const bytesBefore = tensorBytes(model);
    const parametersBefore = modelStats(model).parameters;
    const graph = model.graph;

    ctx.progress('groups', 0, 3);
    const analysis = analyzeChannels(graph, options.exclude);
    const { groups } = analysis;
    const classes = groups.classes();
    if (classes.size === 0) throw new WhittleError('UNSUPPORTED', 'nothing to prune: the model has no Conv, Gemm or MatMul with stored weights');
    ctx.checkpoint();

    ctx.progress('importance', 1, 3);
    const importance = options.importance === 'activation'
      ? await activationImportance(model, analysis, options.reconstruct!, ctx)
      : groupImportance(analysis, options.importance ?? 'l1', options.bnScale ?? true);
    const overrides = Object.entries(options.groups ?? {});
    for (const [key] of overrides) {
      if (!graph.nodes.some((n) => isExcluded(n, [key]))) throw new WhittleError('BAD_USAGE', `groups: no layer named ${key}`);
    }
    const overrideOf = (root: number): number | undefined => {
      const names = (classes.get(root) ?? []).map((s) => s.node);
      for (const [key, value] of overrides) if (names.some((n) => isExcluded(n, [key]))) return value;
      return undefined;
    };
    const choices = chooseChannels(groups, importance, options.sparsity, overrideOf, roundTo, options.scope ?? 'group');
    ctx.checkpoint();

    const kept = (source: number) => choices.get(groups.find(source))?.kept ?? null;
    const reconstruction = options.reconstruct ? await reconstructConsumers(model, analysis, kept, options.reconstruct, ctx) : undefined;
    ctx.checkpoint();

    ctx.progress('rewrite', 2, 3);
    const names = new NameAllocator(model);
    const { changed, created } = applyEdits(graph, analysis.edits, kept, (b) => names.fresh(b));
    refreshShapes(graph, analysis.touchedValues, created);
    ctx.progress('rewrite', 3, 3);

    const report: GroupReport[] = [];
    const pinned: PinnedReport[] = [];
    let prunable = 0;
    let removed = 0;
    for (const [root, sources] of classes) {
      const producers = sources.map((s) => s.node.label);
      const channels = sources[0]!.channels;
      const reasons = groups.pinnedReasons(root);
      if (reasons.length) { pinned.push({ producers, channels, reasons }); continue; }
      const choice = choices.get(root)!;
      prunable += channels;
      removed += channels - choice.keep;
      report.push({ producers, members: [...(analysis.members.get(root) ?? [])].filter((m) => !producers.includes(m)), channelsBefore: channels, channelsAfter: choice.keep });
    }
    const warnings: string[] = [];
    if (prunable === 0) warnings.push('every channel group is pinned: nothing was pruned');
    for (const p of pinned) if (p.reasons.some((r) => !r.startsWith('graph output'))) ctx.warn(`group of ${p.producers.join(', ')} not pruned: ${p.reasons.join('; ')}`);
    for (const w of warnings) ctx.warn(w);
    const details: ChannelPruneDetails = {
      groups: report,
      pinned,
      prunableChannels: prunable,
      removedChannels: removed,
      achievedSparsity: prunable ? removed / prunable : 0,
      parametersBefore,
      parametersAfter: modelStats(model).parameters,
      ...(reconstruction ? { reconstruction } : {}),
    };
    return {
      pass: 'prune-channels',
      nodesChanged: changed.size,
      bytesBefore,
      bytesAfter: tensorBytes(model),
      excluded: pinned.flatMap((p) => p.producers),
      warnings: [...warnings, ...pinned.filter((p) => p.reasons.some((r) => !r.startsWith('graph output'))).map((p) => `group of ${p.producers.join(', ')} not pruned: ${p.reasons.join('; ')}`)],
      details: details as unknown as Record<string, unknown>,
    };
  },
};
