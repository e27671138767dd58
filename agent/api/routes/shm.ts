import { OutpostError } from '../../../protocol/errors/index.js';
import type { Handler } from '../context.js';
import { readBody, sendBytes, sendJson } from '../http.js';

/**
 * The KServe v2 / Triton system shared-memory routes (agent/api/shm.ts holds the regions):
 *   GET  /v2/systemsharedmemory[/region/{name}]/status     -> [{name, key, offset, byte_size}]
 *   POST /v2/systemsharedmemory/region/{name}/register     {key, offset, byte_size} -> 200, empty
 *   POST /v2/systemsharedmemory[/region/{name}]/unregister -> 200, empty (all regions without a name)
 * Answers as Triton's HTTP endpoint does; refusals carry an API_SHM_* code besides `error`.
 */
const REGISTER_BODY_MAX = 16 * 1024;

export const shmStatus: Handler = (_req, res, { params }, ctx) => {
  sendJson(res, 200, ctx.shm.status(params.region));
};

export const shmRegister: Handler = async (req, res, { params }, ctx) => {
  const raw = await readBody(req, REGISTER_BODY_MAX);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new OutpostError('API_BAD_JSON', `the register body does not parse: ${(err as Error).message}`);
  }
  ctx.shm.register(params.region!, body);
  ctx.log.debug({ region: params.region }, 'shared-memory region registered');
  sendBytes(res, 200, new Uint8Array(0), {});
};

export const shmUnregister: Handler = (_req, res, { params }, ctx) => {
  ctx.shm.unregister(params.region);
  sendBytes(res, 200, new Uint8Array(0), {});
};
