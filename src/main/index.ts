/**
 * Electron main: one window, sandboxed renderer, IPC relayed to the back end running in a
 * utility process (long work never blocks the window), and a custom protocol for gallery
 * images (the renderer never gets file:// access).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { app, BrowserWindow, ipcMain, net, protocol, shell, utilityProcess } from 'electron';
import { channelOf, EVENT_CHANNEL, METHODS } from '../shared/channels.js';
import { BackendClient } from './backend-client.js';

protocol.registerSchemesAsPrivileged([{ scheme: 'dg-files', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

function startBackend(): BackendClient {
  const child = utilityProcess.fork(join(import.meta.dirname, 'backend-host.js'), [], { serviceName: 'DG Studio engine' });
  const client = new BackendClient({ postMessage: (m) => child.postMessage(m), onMessage: (l) => child.on('message', l) });
  child.on('exit', (code) => client.failAll(`the engine process stopped (exit code ${code}); restart DG Studio`));
  return client;
}

function createWindow(backend: BackendClient): void {
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
  const backend = startBackend();
  await backend.ready;
  protocol.handle('dg-files', async (request) => {
    const url = new URL(request.url);
    const path = (await backend.call('$resolveFile', [url.hostname, url.pathname.slice(1)])) as string | null;
    return path ? net.fetch(pathToFileURL(path).toString()) : new Response('not found', { status: 404 });
  });
  for (const method of METHODS) ipcMain.handle(channelOf(method), (_event, ...args: unknown[]) => backend.call(method, args));
  createWindow(backend);
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow(backend);
  });
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
