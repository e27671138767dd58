import { OutpostError } from '../../protocol/errors/index.js';
import { formatModelId, parseModelId } from '../../protocol/ids.js';
import type { Db } from '../db/open.js';
import type { Fleet } from '../fleet/fleet.js';
import { ROW_STATES, type FleetQuery, type FleetView, type RowState } from '../fleet/fleet-view.js';
import { modelsView } from '../fleet/models-view.js';
import { parseTag } from '../fleet/types.js';
import type { Route } from './router.js';

/** The fleet list answers at most this many rows per request. */
export const MAX_PAGE = 200;
const DEFAULT_PAGE = 50;

/**
 * The read routes of the web page (docs/http-api.md, "Web page views"): the fleet list, paged and
 * filtered on the server, one device with its history and events, and the models with who runs
 * them. They only read; every change still goes through the fleet's own routes.
 *
 *   GET /v1/fleet/devices?offset&limit&tag&state&model&q  (admin) -> FleetPage
 *   GET /v1/fleet/devices/:id                              (admin) -> DeviceView
 *   GET /v1/fleet/models                                   (admin, user) -> {models: ModelView[]}
 */
export function fleetViewRoutes(db: Db, getFleet: () => Fleet | null, getView: () => FleetView | null): Route[] {
  const view = (): FleetView => {
    const v = getView();
    if (!v)
      throw new OutpostError(
        'BROKER_UNREACHABLE',
        'the fleet is still starting (broker not connected); retry in a moment',
      );
    return v;
  };
  return [
    {
      method: 'GET',
      path: '/v1/fleet/devices',
      access: 'admin',
      handler: async ({ url }) => ({ body: view().page(parseFleetQuery(url.searchParams)) }),
    },
    {
      method: 'GET',
      path: '/v1/fleet/devices/:id',
      access: 'admin',
      handler: async ({ params }) => ({ body: view().device(params.id) }),
    },
    {
      method: 'GET',
      path: '/v1/fleet/models',
      access: 'write',
      handler: async ({ principal }) => ({ body: { models: modelsView(db, principal!, getFleet()) } }),
    },
  ];
}

/** The fleet list's query string, validated once; unknown parameters are refused, not ignored. */
export function parseFleetQuery(sp: URLSearchParams): FleetQuery {
  const known = new Set(['offset', 'limit', 'tag', 'state', 'model', 'q']);
  for (const k of sp.keys())
    if (!known.has(k))
      throw new OutpostError('BAD_REQUEST', `unknown parameter "${k}"; use ${[...known].join(', ')}`, { key: k });
  const int = (k: string, dflt: number, min: number, max: number): number => {
    const raw = sp.get(k);
    if (raw === null || raw === '') return dflt;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new OutpostError('BAD_REQUEST', `${k} must be an integer from ${min} to ${max}, got "${raw}"`, {
        key: k,
        value: raw,
      });
    return n;
  };
  const q: FleetQuery = { offset: int('offset', 0, 0, 1e9), limit: int('limit', DEFAULT_PAGE, 1, MAX_PAGE) };
  const tag = sp.get('tag');
  if (tag) q.tag = parseTag(tag, 'tag');
  const state = sp.get('state');
  if (state) {
    if (!ROW_STATES.includes(state as RowState))
      throw new OutpostError('BAD_REQUEST', `state must be one of ${ROW_STATES.join(', ')}, got "${state}"`, {
        key: 'state',
        value: state,
      });
    q.state = state as RowState;
  }
  const model = sp.get('model');
  if (model) q.model = formatModelId(parseModelId(model, 'model'));
  const text = sp.get('q');
  if (text) {
    if (text.length > 64)
      throw new OutpostError('BAD_REQUEST', 'q (a part of a device id) must be at most 64 characters', { key: 'q' });
    q.q = text;
  }
  return q;
}
