import type { ReplyEnvelope, RequestEnvelope } from '../../api/envelope.ts';

/**
 * Which run the user is looking at, for File → Export… and Reveal in Folder. The renderer has no
 * channel to tell main about its selection (the preload exposes only call/subscribe/pathForFile),
 * but every call goes through main: the run whose details the renderer fetched last
 * (`experiments.get`) is the one on screen.
 */
export interface SelectedRun {
  runId: string;
  /** Absolute artifact paths, in the order the store lists them. */
  artifacts: string[];
}

export class RunSelection {
  private selected: SelectedRun | null = null;

  current(): SelectedRun | null {
    return this.selected;
  }

  /** Looks at one answered call; true when the selection changed. */
  observe(request: RequestEnvelope, reply: ReplyEnvelope): boolean {
    const params = request.params as { runId?: unknown } | undefined;
    const runId = typeof params?.runId === 'string' ? params.runId : null;
    if (request.method === 'experiments.get') {
      if (reply.ok) {
        const result = reply.result as { id?: unknown; artifacts?: { path?: unknown }[] } | null;
        const id = typeof result?.id === 'string' ? result.id : runId;
        if (!id) return false;
        const artifacts = (Array.isArray(result?.artifacts) ? result.artifacts : []).map((a) => a?.path).filter((p): p is string => typeof p === 'string');
        const before = JSON.stringify(this.selected);
        this.selected = { runId: id, artifacts };
        return JSON.stringify(this.selected) !== before;
      }
      if (reply.error.code === 'NOT_FOUND' && runId !== null && runId === this.selected?.runId) return this.clear();
      return false;
    }
    if (request.method === 'experiments.delete' && reply.ok && runId !== null && runId === this.selected?.runId) return this.clear();
    return false;
  }

  /** The file Reveal in Folder shows: the run's model (ONNX, else a TF.js model.json), else its first file. */
  revealTarget(): string | null {
    const files = this.selected?.artifacts ?? [];
    return files.find((f) => /\.onnx$/i.test(f)) ?? files.find((f) => /(^|[\\/])model\.json$/i.test(f)) ?? files[0] ?? null;
  }

  private clear(): boolean {
    if (this.selected === null) return false;
    this.selected = null;
    return true;
  }
}
