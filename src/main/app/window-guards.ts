/**
 * Decisions for the Electron window, kept free of Electron so they are unit-tested: which links
 * may open outside the app, which navigations and permission requests are allowed (none), and
 * which IPC senders are the app's own page.
 */

/** Hosts the app may open in the user's browser (documentation and licences), https only. */
export const EXTERNAL_ALLOW_LIST = ['github.com', 'onnxruntime.ai', 'arxiv.org', 'creativecommons.org', 'www.apache.org', 'opensource.org'];

/** Whether shell.openExternal may open this URL: https to an allow-listed host, nothing else. */
export function externalUrlAllowed(raw: string): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  if (url.protocol !== 'https:' || url.username || url.password) return false;
  return EXTERNAL_ALLOW_LIST.includes(url.hostname.toLowerCase());
}

/**
 * Whether a navigation of the window is allowed: only to the app's own page (the dev server's
 * origin in development, the packaged index.html file otherwise). A dropped file, a link or a
 * script cannot navigate the window away.
 */
export function navigationAllowed(raw: string, appUrl: string): boolean {
  let url: URL;
  let app: URL;
  try {
    url = new URL(raw);
    app = new URL(appUrl);
  } catch {
    return false;
  }
  if (app.protocol === 'file:') return url.protocol === 'file:' && url.pathname === app.pathname;
  return url.origin === app.origin;
}

/** Whether an IPC message comes from the app's own top frame (not an iframe, not another page). */
export function senderAllowed(frameUrl: string | undefined, isMainFrame: boolean, appUrl: string): boolean {
  return isMainFrame && !!frameUrl && navigationAllowed(frameUrl, appUrl);
}

/** Permission requests (camera, notifications, …): the studio needs none. */
export function permissionAllowed(_permission: string): boolean {
  return false;
}
