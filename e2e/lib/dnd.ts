import type { Page } from 'playwright-core';

/**
 * A real drop of a file on the page: a DataTransfer holding a File built in the page from bytes read
 * in Node, dispatched as dragenter → dragover → drop on the target (the window's drop zone listens
 * anywhere, so the default target is the body).
 */
export async function dropFile(page: Page, name: string, bytes: Uint8Array, target = 'body', mime = 'application/octet-stream'): Promise<void> {
  const dataTransfer = await page.evaluateHandle(
    ({ b64, name, mime }) => {
      const bin = atob(b64);
      const arr = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) arr[i] = bin.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([arr], name, { type: mime }));
      return dt;
    },
    { b64: Buffer.from(bytes).toString('base64'), name, mime },
  );
  try {
    for (const type of ['dragenter', 'dragover', 'drop']) await page.dispatchEvent(target, type, { dataTransfer });
  } finally {
    await dataTransfer.dispose();
  }
}
