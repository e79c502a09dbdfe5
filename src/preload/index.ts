/**
 * Preload: exposes exactly the StudioApi contract (plus its event stream), nothing else.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { apiOverTransport, channelOf, EVENT_CHANNEL, type StudioBridge, type StudioEvent } from '../shared/api.js';

const api: StudioBridge = {
  ...apiOverTransport((method, args) => ipcRenderer.invoke(channelOf(method), ...args)),
  onEvent(listener: (e: StudioEvent) => void) {
    const wrapped = (_e: unknown, event: StudioEvent) => listener(event);
    ipcRenderer.on(EVENT_CHANNEL, wrapped);
    return () => ipcRenderer.removeListener(EVENT_CHANNEL, wrapped);
  },
};

contextBridge.exposeInMainWorld('dgStudio', api);
