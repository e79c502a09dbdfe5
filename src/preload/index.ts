/**
 * Preload: exposes exactly the StudioApi contract (plus its event stream), nothing else.
 */
import { contextBridge, ipcRenderer } from 'electron';
import type { StudioBridge, StudioEvent } from '../shared/api.js';
import { channelOf, EVENT_CHANNEL, METHODS } from '../shared/channels.js';

const api = Object.fromEntries(
  METHODS.map((m) => [m, (...args: unknown[]) => ipcRenderer.invoke(channelOf(m), ...args)]),
) as unknown as StudioBridge;
api.onEvent = (listener: (e: StudioEvent) => void) => {
  const wrapped = (_e: unknown, event: StudioEvent) => listener(event);
  ipcRenderer.on(EVENT_CHANNEL, wrapped);
  return () => ipcRenderer.removeListener(EVENT_CHANNEL, wrapped);
};

contextBridge.exposeInMainWorld('dgStudio', api);
