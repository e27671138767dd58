import { COMMON } from './codes/common.js';
import { MODEL } from './codes/model.js';
import { CATALOG as CATALOG_CODES } from './codes/catalog.js';
import { FLEET } from './codes/fleet.js';
import { FETCH } from './codes/fetch.js';
import { STORE } from './codes/store.js';
import { RUNTIME } from './codes/runtime.js';
import { API } from './codes/api.js';
import { SHM } from './codes/shm.js';
import { ADDON } from './codes/addon.js';
import { AGENT } from './codes/agent.js';
import { SYNC } from './codes/sync.js';
import { DEMO } from './codes/demo.js';
import { TLS } from './codes/tls.js';
import { TRUST } from './codes/trust.js';
import { LIMITS } from './codes/limits.js';
import { ROLLOUT } from './codes/rollout.js';
import { DYNSEC } from './codes/dynsec.js';
import type { ErrorSpec } from './types.js';

/**
 * The one error catalog of Outpost. Each area keeps its codes in its own file under codes/ so
 * that it stays small; this file joins them, and `test/unit/errors-catalog.test.ts` checks that
 * no code is defined twice and that docs/errors.md lists exactly these codes.
 *
 * To add a code: add it to the area's file, then run `npm run docs:errors`.
 */
export const AREAS = {
  common: COMMON,
  model: MODEL,
  catalog: CATALOG_CODES,
  fleet: FLEET,
  fetch: FETCH,
  store: STORE,
  runtime: RUNTIME,
  api: API,
  shm: SHM,
  addon: ADDON,
  agent: AGENT,
  sync: SYNC,
  demo: DEMO,
  tls: TLS,
  trust: TRUST,
  limits: LIMITS,
  rollout: ROLLOUT,
  dynsec: DYNSEC,
} as const;

type Areas = typeof AREAS;
export type ErrorCode = { [A in keyof Areas]: keyof Areas[A] }[keyof Areas] & string;

export const CATALOG: Readonly<Record<ErrorCode, ErrorSpec>> = Object.freeze(
  Object.assign({}, ...Object.values(AREAS)) as Record<ErrorCode, ErrorSpec>,
);

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(CATALOG, code);
}

/** Whether another attempt of the same operation can succeed (see ErrorSpec.retryable). */
export function isRetryable(code: string): boolean {
  return isErrorCode(code) && CATALOG[code].retryable === true;
}
