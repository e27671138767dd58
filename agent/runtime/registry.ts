import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../protocol/log.js';
import type { Framework } from '../../protocol/manifest-types.js';
import type { BackendCapability } from '../../protocol/reported-state.js';
import type { Availability, Backend } from './backend.js';
import { findAddon, notBuiltReason, type AddonName } from './backends/native-loader.js';
import type { OnnxSettings } from './backends/onnx-options.js';
import type { PlacementMemo } from './backends/onnx-placement.js';

/**
 * Picks the backend for a model from its framework and from what this host can run.
 *
 * Backends are registered by name and created lazily: the module that brings a backend (and the
 * native addon behind it) is imported only when someone asks about it, and any failure to import
 * or create it becomes `{available: false, reason}`, never an exception out of the registry.
 *
 * A backend module exports `createBackend(opts: {log}) => Backend` (or a named `create*Backend`,
 * or a default export of either a Backend or such a function).
 */
export interface BackendEntry {
  name: string;
  frameworks: readonly Framework[];
  create(log: Logger): Promise<Backend>;
  /**
   * What capabilities() reports while the backend is not created yet, without importing its
   * module or loading its native addon; null (or absent) means "create it and ask it".
   */
  beforeLoad?(): Availability | null;
}

/** Framework -> backends in order of preference (onnx falls back to OpenCV DNN). */
export const PREFERENCE: Readonly<Record<Framework, readonly string[]>> = {
  onnx: ['onnx', 'opencv'],
  caffe: ['opencv'],
  darknet: ['opencv'],
  tensorflow: ['opencv'],
  enet: ['opencv'],
  'tensor-rt': ['tensorrt'],
  hailo: ['hailort'],
  myriad: ['openvino'],
  dldt: ['openvino'],
};

type Created = { backend: Backend } | { error: string };

export class BackendRegistry {
  private readonly entries = new Map<string, BackendEntry>();
  private readonly created = new Map<string, Promise<Created>>();
  private readonly log: Logger;

  constructor(opts: { log?: Logger; entries?: BackendEntry[] } = {}) {
    this.log = moduleLogger(opts.log ?? silentLogger, 'runtime.registry');
    for (const e of opts.entries ?? defaultEntries()) this.register(e);
  }

  /** Adds or replaces a backend by name (replacing forgets a backend created before). */
  register(entry: BackendEntry): void {
    this.entries.set(entry.name, entry);
    this.created.delete(entry.name);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Every registered backend with its availability and reason; never throws. A backend no model
   * has needed yet answers from its entry's beforeLoad() when it has one (docs/runtime.md,
   * "Backends load with the first model that needs them").
   */
  async capabilities(): Promise<BackendCapability[]> {
    return Promise.all(
      [...this.entries.values()].map(async (e) => {
        const early = this.created.has(e.name) ? null : (e.beforeLoad?.() ?? null);
        return { name: e.name, frameworks: [...e.frameworks], ...(early ?? (await this.availabilityOf(e.name))) };
      }),
    );
  }

  async availabilityOf(name: string): Promise<Availability> {
    const c = await this.instantiate(name);
    if ('error' in c) return { available: false, reason: c.error };
    try {
      return await c.backend.availability();
    } catch (err) {
      // The contract says availability() never throws; a backend that does is unavailable.
      return { available: false, reason: `availability check failed: ${(err as Error).message}` };
    }
  }

  /** The backend by name, whether or not it is available (tests, `--backend` overrides). */
  async get(name: string): Promise<Backend> {
    const c = await this.instantiate(name);
    if ('error' in c)
      throw new OutpostError('RUNTIME_BACKEND_UNAVAILABLE', `backend ${name} is unavailable: ${c.error}`, {
        backend: name,
      });
    return c.backend;
  }

  /**
   * The first available backend for a framework, in PREFERENCE order among registered ones (then
   * any other registered backend that claims the framework). The error lists why each candidate
   * is unavailable, so an operator sees "addon not built" rather than "no backend".
   */
  async select(framework: Framework): Promise<Backend> {
    const preferred = (PREFERENCE[framework] ?? []).filter((n) => this.entries.has(n));
    const claiming = [...this.entries.values()]
      .filter((e) => e.frameworks.includes(framework) && !preferred.includes(e.name))
      .map((e) => e.name);
    const reasons: Record<string, string> = {};
    for (const name of [...preferred, ...claiming]) {
      const a = await this.availabilityOf(name);
      if (a.available) return this.get(name);
      reasons[name] = a.reason ?? 'unavailable';
    }
    const why =
      Object.entries(reasons)
        .map(([n, r]) => `${n}: ${r}`)
        .join('; ') || 'no backend for it is registered';
    throw new OutpostError(
      'RUNTIME_BACKEND_UNAVAILABLE',
      `no available backend runs framework ${framework} here (${why})`,
      { framework, reasons },
    );
  }

  private instantiate(name: string): Promise<Created> {
    const entry = this.entries.get(name);
    if (!entry)
      return Promise.reject(
        new OutpostError('RUNTIME_BACKEND_UNKNOWN', `no backend named ${name}; known: ${this.names().join(', ')}`, {
          backend: name,
        }),
      );
    let p = this.created.get(name);
    if (!p) {
      p = entry.create(this.log).then(
        (backend) => ({ backend }),
        (err: unknown) => {
          const error = err instanceof Error ? err.message : String(err);
          this.log.info({ backend: name, reason: error }, 'backend unavailable');
          return { error };
        },
      );
      this.created.set(name, p);
    }
    return p;
  }
}

/**
 * Imports a backend module lazily and finds its factory. A missing module is a reason, not a crash.
 * `module` is a function that imports it with a literal specifier (`() => import('./x.js')`), so
 * that the bundler (agent/bundle.mjs) sees the module and keeps it in a chunk of its own, or a
 * specifier resolved from this file.
 */
export function lazyModuleEntry(
  name: string,
  frameworks: readonly Framework[],
  module: string | (() => Promise<unknown>),
  options: Record<string, unknown> = {},
): BackendEntry {
  return {
    name,
    frameworks,
    async create(log) {
      let mod: Record<string, unknown>;
      try {
        mod = (await (typeof module === 'string' ? import(module) : module())) as Record<string, unknown>;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        // ERR_MODULE_NOT_FOUND from an ES module's import(), MODULE_NOT_FOUND from the device
        // bundle, where import() became require() (agent/bundle.mjs).
        if (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND')
          throw new Error(`the ${name} backend is not part of this build`);
        throw new Error(`the ${name} backend module failed to load: ${e.message}`);
      }
      const factory =
        Object.entries(mod).find(([k, v]) => typeof v === 'function' && /^create\w*Backend$/.test(k))?.[1] ??
        mod.default;
      const made =
        typeof factory === 'function'
          ? await (factory as (o: { log: Logger }) => Backend | Promise<Backend>)({ ...options, log })
          : factory;
      if (!isBackend(made)) throw new Error(`the ${name} backend module exports no createBackend() factory`);
      return made;
    },
  };
}

function isBackend(v: unknown): v is Backend {
  const b = v as Backend | null;
  return !!b && typeof b.name === 'string' && typeof b.availability === 'function' && typeof b.load === 'function';
}

/**
 * The backends Outpost knows. The native ones are looked for without loading them: an addon that
 * was not built is unavailable with the loader's reason, and nothing of it is imported. A built
 * OpenCV addon is reported available and dlopen'd (with libopencv_*, ~7 MiB of resident memory)
 * by the first model that needs it; the vendor addons, whose availability also depends on a
 * device being present, are probed when built.
 */
export function defaultEntries(opts: { onnx?: Partial<OnnxSettings>; placement?: PlacementMemo } = {}): BackendEntry[] {
  return [
    lazyModuleEntry('onnx', ['onnx'], () => import('./backends/onnx.js'), {
      settings: opts.onnx,
      placement: opts.placement,
    }),
    {
      ...lazyModuleEntry(
        'opencv',
        ['caffe', 'darknet', 'tensorflow', 'enet', 'onnx'],
        () => import('./backends/opencv.js'),
      ),
      beforeLoad: () => builtAddon('outpost_opencv_dnn', true),
    },
    {
      ...lazyModuleEntry('tensorrt', ['tensor-rt'], () => import('./backends/tensorrt.js')),
      beforeLoad: () => builtAddon('outpost_tensorrt'),
    },
    {
      ...lazyModuleEntry('hailort', ['hailo'], () => import('./backends/hailort.js')),
      beforeLoad: () => builtAddon('outpost_hailort'),
    },
    {
      ...lazyModuleEntry('openvino', ['myriad', 'dldt'], () => import('./backends/openvino.js')),
      beforeLoad: () => builtAddon('outpost_openvino'),
    },
  ];
}

/** Unavailable when the addon file is absent; when present, available (`deferred`) or null (probe it). */
function builtAddon(name: AddonName, deferred = false): Availability | null {
  const file = findAddon(name);
  if (!file) return { available: false, reason: notBuiltReason(name) };
  return deferred ? { available: true, details: { addon: file, loaded: false } } : null;
}
