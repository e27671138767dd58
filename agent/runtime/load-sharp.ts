import type SharpFn from 'sharp';

/**
 * sharp (libvips) is loaded by the first image request (predict, annotate), not at start: it
 * costs tens of MiB resident and tens of ms to load, and a device whose apps send tensors never
 * needs it. One import per process; a failure to load is the request's error, not the agent's.
 */
let loading: Promise<typeof SharpFn> | undefined;

export function loadSharp(): Promise<typeof SharpFn> {
  loading ??= import('sharp').then((m) => m.default);
  return loading;
}
