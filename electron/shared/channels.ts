/** The IPC channels between the preload and main; the preload uses nothing else. */
export const CALL_CHANNEL = 'whittle:call';
export const PUSH_CHANNEL = 'whittle:push';
