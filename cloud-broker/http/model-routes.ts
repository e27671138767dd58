import { OutpostError } from '../../protocol/errors/index.js';
import { parseModelId, parseVersion } from '../../protocol/ids.js';
import type { BlobStore } from '../artifacts/index.js';
import { authorizeOwner, type Principal } from '../auth/index.js';
import { canReadBlob } from '../catalog/access.js';
import {
  createVersion,
  getModel,
  getVersion,
  listModels,
  parseVersionBody,
  type VersionBody,
} from '../catalog/index.js';
import type { Db } from '../db/open.js';
import { readJsonBody } from './body.js';
import type { Route } from './router.js';

function idOf(params: Record<string, string>): { owner: string; name: string; id: string } {
  const id = `${params.owner}/${params.name}`;
  return { ...parseModelId(id), id };
}

/**
 * Every file of a version must be a stored blob of exactly the listed size, and one the publisher
 * may read (it uploaded it, or a version it may see lists it): a blob of another owner's private
 * model cannot be republished by naming its hash. Such a blob answers like an absent one.
 */
async function checkBlobs(db: Db, store: BlobStore, p: Principal, body: VersionBody): Promise<void> {
  for (const f of body.files) {
    const st = canReadBlob(db, p, f.sha256) ? await store.stat(f.sha256) : null;
    if (!st)
      throw new OutpostError(
        'CATALOG_FILE_MISSING',
        `file "${f.path}" (sha256 ${f.sha256}) is not uploaded by you; PUT it to /v1/blobs/${f.sha256} first`,
        { path: f.path, sha256: f.sha256 },
      );
    if (st.size !== f.size) {
      throw new OutpostError(
        'CATALOG_FILE_SIZE_MISMATCH',
        `file "${f.path}" is listed with ${f.size} bytes but its blob has ${st.size}; re-hash the files and publish again`,
        { path: f.path, listed: f.size, stored: st.size },
      );
    }
  }
}

/** `/v1/models...`: publish a version, list, show, one version. */
export function modelRoutes(db: Db, store: BlobStore): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/models/:owner/:name/versions',
      access: 'write',
      handler: async ({ req, params, principal, log }) => {
        const { owner, name, id } = idOf(params);
        authorizeOwner(principal!, owner);
        const body = parseVersionBody(await readJsonBody(req), id);
        await checkBlobs(db, store, principal!, body);
        const created = createVersion(db, owner, name, body, principal!.subject);
        if (!created.unchanged)
          log.info({ model: id, version: created.version, files: body.files.length }, 'version published');
        return { status: created.unchanged ? 200 : 201, body: created };
      },
    },
    {
      method: 'GET',
      path: '/v1/models',
      access: 'any',
      handler: async ({ principal }) => ({ body: { models: listModels(db, principal!) } }),
    },
    {
      method: 'GET',
      path: '/v1/models/:owner/:name',
      access: 'any',
      handler: async ({ params, principal }) => {
        const { owner, name } = idOf(params);
        return { body: getModel(db, principal!, owner, name) };
      },
    },
    {
      method: 'GET',
      path: '/v1/models/:owner/:name/versions/:v',
      access: 'any',
      handler: async ({ params, principal }) => {
        const { owner, name } = idOf(params);
        const v = params.v === 'latest' ? 'latest' : parseVersion(params.v, 'version');
        return { body: getVersion(db, principal!, owner, name, v) };
      },
    },
  ];
}
