import type { Route } from '../context.js';
import { live, ready, serverMetadata } from './health.js';
import { infer } from './infer.js';
import { list, metadata, modelReady } from './models.js';
import { events, metrics, status } from './observe.js';
import { predict } from './predict.js';
import { repositoryIndex, repositoryLoad, repositoryUnload } from './repository.js';
import { shmRegister, shmStatus, shmUnregister } from './shm.js';

/** The route table: patterns of %-decoded segments (`owner%2Fname` is one `:name` segment). */
export const ROUTES: readonly Route[] = [
  { name: 'health_live', pattern: ['v2', 'health', 'live'], methods: { GET: live } },
  { name: 'health_ready', pattern: ['v2', 'health', 'ready'], methods: { GET: ready } },
  { name: 'server_metadata', pattern: ['v2'], methods: { GET: serverMetadata } },
  { name: 'models', pattern: ['v2', 'models'], methods: { GET: list } },
  { name: 'model_metadata', pattern: ['v2', 'models', ':name'], methods: { GET: metadata } },
  { name: 'model_ready', pattern: ['v2', 'models', ':name', 'ready'], methods: { GET: modelReady } },
  { name: 'infer', pattern: ['v2', 'models', ':name', 'infer'], methods: { POST: infer } },
  { name: 'model_metadata', pattern: ['v2', 'models', ':name', 'versions', ':version'], methods: { GET: metadata } },
  {
    name: 'model_ready',
    pattern: ['v2', 'models', ':name', 'versions', ':version', 'ready'],
    methods: { GET: modelReady },
  },
  { name: 'infer', pattern: ['v2', 'models', ':name', 'versions', ':version', 'infer'], methods: { POST: infer } },
  { name: 'repository', pattern: ['v2', 'repository', 'index'], methods: { POST: repositoryIndex } },
  { name: 'repository', pattern: ['v2', 'repository', 'models', ':name', 'load'], methods: { POST: repositoryLoad } },
  {
    name: 'repository',
    pattern: ['v2', 'repository', 'models', ':name', 'unload'],
    methods: { POST: repositoryUnload },
  },
  { name: 'predict', pattern: ['v1', 'models', ':owner', ':name', 'predict'], methods: { POST: predict } },
  { name: 'events', pattern: ['v1', 'events'], methods: { GET: events } },
  { name: 'status', pattern: ['v1', 'status'], methods: { GET: status } },
  { name: 'metrics', pattern: ['metrics'], methods: { GET: metrics } },
  // System shared memory (Triton's extension): one route name for all five, to keep metrics small.
  { name: 'shm', pattern: ['v2', 'systemsharedmemory', 'status'], methods: { GET: shmStatus } },
  { name: 'shm', pattern: ['v2', 'systemsharedmemory', 'region', ':region', 'status'], methods: { GET: shmStatus } },
  {
    name: 'shm',
    pattern: ['v2', 'systemsharedmemory', 'region', ':region', 'register'],
    methods: { POST: shmRegister },
  },
  { name: 'shm', pattern: ['v2', 'systemsharedmemory', 'unregister'], methods: { POST: shmUnregister } },
  {
    name: 'shm',
    pattern: ['v2', 'systemsharedmemory', 'region', ':region', 'unregister'],
    methods: { POST: shmUnregister },
  },
];
