import { useEffect, useState } from 'preact/hooks';
/**
 * The page's one way to the API: fetch with the token from sessionStorage in the Authorization
 * header. The token never goes into a URL (it would land in history, logs and Referer headers)
 * and never into localStorage (it would outlive the browser session).
 */
const KEY = 'outpost.token';

export interface ErrorBody {
  code: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function getToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, token);
}

type Listener = () => void;
const onSignedOut = new Set<Listener>();

/** Called when the API answers 401: the token was revoked or the cloud's data dir changed. */
export function whenSignedOut(fn: Listener): () => void {
  onSignedOut.add(fn);
  return () => onSignedOut.delete(fn);
}

export function authHeaders(token = getToken()): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export async function api<T>(
  path: string,
  opts: { method?: string; body?: unknown; token?: string; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders(opts.token ?? getToken()) };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method: opts.method ?? 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      cache: 'no-store',
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', `the cloud did not answer (${(err as Error).message}); is it running?`);
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const e = (body ?? {}) as Partial<ErrorBody>;
    const err = new ApiError(
      res.status,
      e.code ?? `HTTP_${res.status}`,
      e.message ?? `the cloud answered ${res.status}`,
    );
    if (res.status === 401 && opts.token === undefined) for (const fn of onSignedOut) fn();
    throw err;
  }
  return body as T;
}

/** `?a=1&b=x` from the defined, non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') sp.set(k, String(v));
  const s = sp.toString();
  return s ? `?${s}` : '';
}

/**
 * Reads `path` when `key` changes and whenever `tick` moves; keeps the last good answer while a
 * re-read is in flight, and aborts a read that a newer one replaced.
 */
export function useApi<T>(path: string | null, deps: unknown[]): { data: T | null; error: unknown } {
  const [state, setState] = useState<{ data: T | null; error: unknown }>({ data: null, error: null });
  useEffect(() => {
    if (path === null) return;
    const ac = new AbortController();
    api<T>(path, { signal: ac.signal })
      .then((data) => setState({ data, error: null }))
      .catch((error) => {
        if ((error as Error).name !== 'AbortError') setState((s) => ({ data: s.data, error }));
      });
    return () => ac.abort();
  }, [path, ...deps]);
  return state;
}
