import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

// Within one process ids strictly increase, so runs started in the same millisecond list in order.
let lastTime = 0;

/**
 * A short id that sorts by creation time: prefix, milliseconds since 1970 in base 36 (9 digits,
 * good until the year 5188), then 5 random base-36 digits so ids made in the same millisecond by
 * different processes do not collide. Lower-case alphanumerics only: safe in paths, URLs, MLflow.
 */
export function newId(prefix: string, now: number = Date.now()): string {
  lastTime = Math.max(now, lastTime + 1);
  const time = lastTime.toString(36).padStart(9, '0');
  let rand = '';
  for (const b of randomBytes(5)) rand += ALPHABET[b % 36];
  return `${prefix}${time}${rand}`;
}

export const newRunId = (now?: number): string => newId('r', now);
export const newExperimentId = (now?: number): string => newId('e', now);

/** Ids are plain alphanumerics; anything else is a typo, and is kept out of SQL patterns. */
export function isIdLike(text: string): boolean {
  return /^[a-z0-9]+$/i.test(text);
}
