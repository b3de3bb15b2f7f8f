/** Short-lived notices ("Job started", "3 layers excluded"); shown by components/Toasts.svelte. */
export interface Toast {
  id: number;
  message: string;
  kind: 'info' | 'ok' | 'error';
}

let next = 1;
export const toasts = $state<Toast[]>([]);

/** `ms` 0: stays until dismissed (errors the user must see). */
export function toast(message: string, kind: Toast['kind'] = 'info', ms = 4000): void {
  const id = next++;
  toasts.push({ id, message, kind });
  if (ms > 0) setTimeout(() => dismissToast(id), ms);
}

export function dismissToast(id: number): void {
  const i = toasts.findIndex((t) => t.id === id);
  if (i >= 0) toasts.splice(i, 1);
}
