import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the system shared-memory extension of the agent's socket (docs/local-api.md). */
export const SHM = {
  API_SHM_BAD_REQUEST: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A shared-memory register request is malformed: the body must be {"key": "/name", "offset": 0, "byte_size": N} and the region name 1-128 of A-Z a-z 0-9 _ . : -.',
  },
  API_SHM_KEY_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The key must name one POSIX shared-memory object in /dev/shm, as given to shm_open ("/name"): no other "/", no "..", and not a symbolic link. Register the object itself.',
  },
  API_SHM_OBJECT_UNAVAILABLE: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "The shared-memory object does not exist, is not a regular file, or the agent's user may not read it (or write it, for outputs). Create it with shm_open + ftruncate and give the agent's group access.",
  },
  API_SHM_OUT_OF_RANGE: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "An offset or size falls outside its region, or the region outside its object's size (or the object shrank after registering). Check shared_memory_offset/shared_memory_byte_size against the registered byte_size; after a shrink, resize the object, then unregister and register the region again.",
  },
  API_SHM_REGION_UNKNOWN: {
    status: 400,
    exit: EXIT.NOT_FOUND,
    hint: 'No shared-memory region of that name is registered. Register it with POST /v2/systemsharedmemory/region/{name}/register; GET /v2/systemsharedmemory/status lists the registered ones.',
  },
  API_SHM_REGION_EXISTS: {
    status: 400,
    exit: EXIT.CONFLICT,
    hint: 'A shared-memory region of that name is already registered. Unregister it first, or use another name.',
  },
  API_SHM_LIMIT: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The agent already holds as many shared-memory regions (or registered bytes) as it allows. Unregister regions you no longer use.',
  },
} as const satisfies ErrorTable;
