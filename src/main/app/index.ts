/**
 * Electron main: one window, sandboxed renderer, IPC relayed to the back end running in a
 * utility process (long work never blocks the window), and a custom protocol for gallery
 * images (the renderer never gets file:// access).
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { app, BrowserWindow, ipcMain, net, protocol, session, shell, utilityProcess } from 'electron';
import { channelOf, EVENT_CHANNEL, METHODS } from '../../shared/api.js';
import { BackendClient } from '../backend/client.js';
import { externalUrlAllowed, navigationAllowed, permissionAllowed, senderAllowed } from './window-guards.js';

protocol.registerSchemesAsPrivileged([{ scheme: 'dg-files', privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

function startBackend(): BackendClient {
  const child = utilityProcess.fork(join(import.meta.dirname, 'backend-host.js'), [], { serviceName: 'DG Studio engine' });
  const client = new BackendClient({ postMessage: (m) => child.postMessage(m), onMessage: (l) => child.on('message', l) });
  child.on('exit', (code) => client.failAll(`the engine process stopped (exit code ${code}); restart DG Studio`, true));
  return client;
}

const devUrl = process.env['ELECTRON_RENDERER_URL'];
const appUrl = !app.isPackaged && devUrl ? devUrl : pathToFileURL(join(import.meta.dirname, '../renderer/index.html')).toString();

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
  // new windows never open; allow-listed https links go to the user's browser
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (externalUrlAllowed(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  // the window never leaves the app's page (a file dropped outside the drop zone, a link, a script)
  win.webContents.on('will-navigate', (event, url) => {
    if (!navigationAllowed(url, appUrl)) event.preventDefault();
  });
  win.webContents.on('will-redirect', (event, url) => {
    if (!navigationAllowed(url, appUrl)) event.preventDefault();
  });
  win.webContents.on('will-attach-webview', (event) => event.preventDefault());
  const off = backend.onEvent((e) => win.webContents.send(EVENT_CHANNEL, e));
  win.on('closed', off);
  void win.loadURL(appUrl);
}

void app.whenReady().then(async () => {
  const backend = startBackend();
  await backend.ready;
  protocol.handle('dg-files', async (request) => {
    const url = new URL(request.url);
    const path = (await backend.call('$resolveFile', [url.hostname, url.pathname.slice(1)])) as string | null;
    return path ? net.fetch(pathToFileURL(path).toString()) : new Response('not found', { status: 404 });
  });
  // the studio asks for no permission (camera, notifications, …): refuse every request and check
  session.defaultSession.setPermissionRequestHandler((_wc, permission, callback) => callback(permissionAllowed(permission)));
  session.defaultSession.setPermissionCheckHandler((_wc, permission) => permissionAllowed(permission));
  // IPC only from the app's own top frame
  for (const method of METHODS)
    ipcMain.handle(channelOf(method), (event, ...args: unknown[]) => {
      if (!senderAllowed(event.senderFrame?.url, event.senderFrame === event.sender.mainFrame, appUrl))
        throw new Error(`refused: "${method}" called from a frame that is not the studio`);
      return backend.call(method, args);
    });
  createWindow(backend);
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow(backend);
  });
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
