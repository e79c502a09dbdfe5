/**
 * Preload: exposes exactly the StudioApi contract, nothing else (contextIsolation on).
 */
import { contextBridge, ipcRenderer } from 'electron';
import type { StudioApi } from '../shared/api.js';
import { CHANNELS } from '../shared/channels.js';

const api: StudioApi = {
  getInfo: () => ipcRenderer.invoke(CHANNELS.getInfo),
  translate: (req) => ipcRenderer.invoke(CHANNELS.translate, req),
};

contextBridge.exposeInMainWorld('dgStudio', api);
