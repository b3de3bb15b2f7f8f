import { app, openModel } from './app-state.svelte.ts';
import { errorMessage } from './errors.ts';

/**
 * Opening models from files the user dropped or picked. Electron: the preload turns each File into
 * its path on disk. Browser: the files are uploaded to the server (one group, so a TF.js model.json
 * and its weight shards land in one folder) and the engine opens the uploaded path.
 */

/** model.json (TF.js) first, then an .onnx file, else the first file: what the user meant to open. */
export function primaryFile<T extends { name: string }>(files: readonly T[]): T | undefined {
  return (
    files.find((f) => f.name.toLowerCase() === 'model.json') ??
    files.find((f) => f.name.toLowerCase().endsWith('.onnx')) ??
    files.find((f) => f.name.toLowerCase().endsWith('.json')) ??
    files[0]
  );
}

function newGroupId(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function uploadOne(uploadUrl: string, file: File, group: string): Promise<string> {
  const sep = uploadUrl.includes('?') ? '&' : '?';
  const url = `${uploadUrl}${sep}name=${encodeURIComponent(file.name)}&group=${group}`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', body: file, headers: { 'X-Whittle-Upload': '1' } });
  } catch (e) {
    throw new Error(`${file.name}: upload failed (${errorMessage(e)})`);
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const err = body as { error?: { message?: string } | string; message?: string } | null;
    const message = (typeof err?.error === 'object' ? err.error.message : err?.error) ?? err?.message ?? (text || res.statusText);
    throw new Error(`${file.name}: upload refused (${res.status}): ${message}`);
  }
  const path = (body as { path?: unknown } | null)?.path;
  if (typeof path !== 'string') throw new Error(`${file.name}: the server's upload reply has no path`);
  return path;
}

/**
 * Opens the model among `files`. Errors are recorded in app.openError (naming the file) and
 * rethrown; the caller decides whether to show more.
 */
export async function openFiles(files: readonly File[]): Promise<void> {
  const primary = primaryFile(files);
  if (!primary) return;
  app.openError = null;
  try {
    if (window.whittle) {
      const path = window.whittle.pathForFile(primary);
      if (!path) throw new Error(`${primary.name}: this file has no path on disk (was it dragged from another app?); save it to a folder and open it from there`);
      await openModel(path);
      return;
    }
    const uploadUrl = app.info?.uploadUrl;
    if (!uploadUrl) throw new Error(`${primary.name}: this server does not accept uploads; type a path inside its workspace instead`);
    app.opening = primary.name;
    const group = newGroupId();
    let primaryPath = '';
    // One at a time: weight shards can be large and the server writes each to disk.
    for (const f of files) {
      const path = await uploadOne(uploadUrl, f, group);
      if (f === primary) primaryPath = path;
    }
    await openModel(primaryPath);
  } catch (error) {
    if (!app.openError) app.openError = { file: primary.name, error };
    throw error;
  } finally {
    app.opening = null;
  }
}
