/**
 * Electron main: one window, sandboxed renderer, IPC through the validated back end, and a
 * custom protocol for gallery images (the renderer never gets file:// access).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { app, BrowserWindow, ipcMain, net, protocol, shell } from 'electron';
import { channelOf, EVENT_CHANNEL, METHODS } from '../shared/channels.js';
import { StudioBackend } from './backend.js';

protocol.registerSchemesAsPrivileged([{ scheme: 'dg-files', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

function createWindow(backend: StudioBackend): void {
  const win = new BrowserWindow({
    width: 1280,
    height: 800,
    show: false,
    title: 'DG Studio',
    webPreferences: {
      preload: join(import.meta.dirname, '../preload/index.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
    },
  });
  win.once('ready-to-show', () => win.show());
  win.webContents.setWindowOpenHandler(({ url }) => {
    void shell.openExternal(url);
    return { action: 'deny' };
  });
  const off = backend.onEvent((e) => win.webContents.send(EVENT_CHANNEL, e));
  win.on('closed', off);
  const devUrl = process.env['ELECTRON_RENDERER_URL'];
  if (!app.isPackaged && devUrl) void win.loadURL(devUrl);
  else void win.loadFile(join(import.meta.dirname, '../renderer/index.html'));
}

void app.whenReady().then(async () => {
  const backend = await StudioBackend.create({ mode: 'electron' });
  protocol.handle('dg-files', (request) => {
    const url = new URL(request.url);
    const path = backend.resolveFile(url.hostname, url.pathname.slice(1));
    return path ? net.fetch(pathToFileURL(path).toString()) : new Response('not found', { status: 404 });
  });
  for (const method of METHODS) ipcMain.handle(channelOf(method), (_event, ...args: unknown[]) => backend.dispatch(method, args));
  createWindow(backend);
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow(backend);
  });
  app.on('before-quit', () => void backend.close());
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
