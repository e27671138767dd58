import { OutpostError } from '../../protocol/errors/index.js';
import { ROOT_MAX_BYTES } from '../../protocol/trust-root.js';
import type { Fleet } from '../fleet/fleet.js';
import type { TrustService } from '../signing/trust.js';
import { readJsonBody } from './body.js';
import type { Route } from './router.js';

/**
 * The root of trust over HTTP (docs/http-api.md, "Trust"; docs/security.md, "Keys").
 *
 *   GET  /v1/trust                  any token    -> TrustStatus (the newest root and its online key)
 *   GET  /v1/trust/root/:N.json     any token    -> root metadata version N (devices walk these)
 *   POST /v1/trust/online-keys      admin        -> 201 {keyid, publicKey}: a new online key, held here
 *   POST /v1/trust/root             admin        {root} -> {version, onlineChanged, resigned}
 *
 * Roots are public (every device of the fleet holds one), so any token reads them; the token only
 * keeps anonymous scanners out. Installing a root needs the admin token AND the root keys'
 * signatures: the token alone cannot change whom devices trust.
 */
export function trustRoutes(get: () => { trust: TrustService; fleet: Fleet } | null): Route[] {
  const svc = () => {
    const s = get();
    if (!s) throw new OutpostError('BROKER_UNREACHABLE', 'the fleet is still starting; retry in a moment');
    return s;
  };
  return [
    { method: 'GET', path: '/v1/trust', access: 'any', handler: async () => ({ body: svc().trust.status() }) },
    {
      method: 'GET',
      path: '/v1/trust/root/:file',
      access: 'any',
      handler: async ({ params }) => {
        const m = /^([1-9][0-9]{0,8})\.json$/.exec(params.file);
        const json = m ? svc().trust.rootJson(Number(m[1])) : null;
        if (json === null)
          throw new OutpostError(
            'NOT_FOUND',
            `no root ${params.file.slice(0, 40)}; the newest is v${svc().trust.version}`,
          );
        return { body: JSON.parse(json) };
      },
    },
    {
      method: 'POST',
      path: '/v1/trust/online-keys',
      access: 'admin',
      handler: async () => ({ status: 201, body: await svc().trust.createOnlineKey() }),
    },
    {
      method: 'POST',
      path: '/v1/trust/root',
      access: 'admin',
      handler: async ({ req }) => {
        // The root travels inside {root}: a little over the root's own bound.
        const b = await readJsonBody(req, ROOT_MAX_BYTES + 1024);
        const { trust, fleet } = svc();
        const res = await trust.installRoot(b.root);
        const resigned = res.onlineChanged ? await fleet.resignAll() : [];
        return { body: { ...res, resigned: resigned.length } };
      },
    },
  ];
}
