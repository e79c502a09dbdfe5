/** IPC channel names: the preload needs these and nothing else from the contract. */
export const CHANNELS = {
  getInfo: 'dg:get-info',
  translate: 'dg:translate',
} as const;
