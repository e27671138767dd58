import { useEffect, useState } from 'preact/hooks';

/**
 * Views are addressed by the URL's hash (#/fleet?tag=lobby, #/devices/cam-01), so the cloud
 * serves one document at /ui/ and a reload or a shared link opens the same view. Only view
 * names, ids and filters go there, never the token.
 */
export interface Route {
  path: string[];
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, '');
  const [p, q] = raw.split('?', 2);
  const path = (p ?? '').split('/').filter(Boolean).map(decodeURIComponent);
  return { path: path.length ? path : ['fleet'], params: new URLSearchParams(q ?? '') };
}

export function href(path: string[], params: Record<string, string | number | undefined> = {}): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') sp.set(k, String(v));
  const q = sp.toString();
  return `#/${path.map(encodeURIComponent).join('/')}${q ? `?${q}` : ''}`;
}

export function go(path: string[], params: Record<string, string | number | undefined> = {}): void {
  location.hash = href(path, params);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = (): void => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
