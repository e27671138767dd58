import { describe, expect, it } from 'vitest';
import { parseReported } from '../../protocol/reported-state.js';
import { parseDeviceTopic, topics } from '../../protocol/topics.js';
import { canPublish, canSubscribe, clientIdAllowed, type Identity } from '../../cloud-broker/broker/acl.js';
import { effectiveDeployments, planRollback } from '../../cloud-broker/fleet/desired.js';
import type { Deployment, Target } from '../../cloud-broker/fleet/types.js';

let next = 1;
function dep(target: Target, model: string, version: number): Deployment {
  return { id: next++, target, model, version, app: null, createdAt: '', rolledBackAt: null, rolloutId: null };
}

describe('effectiveDeployments (pure)', () => {
  it('the newest matching deployment wins, whatever its scope', () => {
    const all = dep({ kind: 'all', value: '*' }, 'o/m', 1);
    const tag = dep({ kind: 'tag', value: 'lab' }, 'o/m', 2);
    const other = dep({ kind: 'device', value: 'x' }, 'o/m', 3);
    expect(effectiveDeployments([all, tag, other], { id: 'd', tags: ['lab'] }).get('o/m')?.version).toBe(2);
    expect(effectiveDeployments([all, tag, other], { id: 'd', tags: [] }).get('o/m')?.version).toBe(1);
    expect(effectiveDeployments([all, tag, other], { id: 'x', tags: ['lab'] }).get('o/m')?.version).toBe(3);
    const laterAll = dep({ kind: 'all', value: '*' }, 'o/m', 4);
    expect(effectiveDeployments([all, tag, other, laterAll], { id: 'x', tags: ['lab'] }).get('o/m')?.version).toBe(4);
  });
});

describe('planRollback (pure)', () => {
  const t: Target = { kind: 'tag', value: 'lab' };
  it('undoes the newest version, including re-deploys of it, and names the previous one', () => {
    const a = dep(t, 'o/m', 1);
    const b = dep(t, 'o/m', 2);
    const c = dep(t, 'o/m', 2);
    expect(planRollback([c, b, a])).toEqual({ undo: [c.id, b.id], from: 2, to: 1 });
  });
  it('refuses when there is nothing earlier', () => {
    expect(planRollback([])).toBeNull();
    const a = dep(t, 'o/m', 3);
    expect(planRollback([a])).toBeNull();
  });
});

describe('topics and ACL (pure)', () => {
  const a: Identity = { kind: 'device', deviceId: 'a' };
  it('parses only concrete topics of the tree', () => {
    expect(parseDeviceTopic(topics.reported('a'))).toEqual({ deviceId: 'a', kind: 'reported' });
    expect(parseDeviceTopic(topics.response('a', 'sync'))).toEqual({ deviceId: 'a', kind: 'responses', cmd: 'sync' });
    for (const bad of [
      'outpost/v1/devices/+/reported',
      'outpost/v1/devices/a/reported/x',
      'outpost/v1/devices/a/responses/#',
      'other/a/reported',
      'outpost/v1/devices//reported',
    ]) {
      expect(parseDeviceTopic(bad), bad).toBeNull();
    }
  });
  it('deny by default for devices', () => {
    expect(canSubscribe(a, topics.desired('a'))).toBe(true);
    expect(canSubscribe(a, 'outpost/v1/devices/a/#')).toBe(false);
    expect(canSubscribe(a, 'outpost/v1/devices/a/+')).toBe(false);
    expect(canSubscribe(a, 'outpost/v1/devices/a/commands/+/x')).toBe(false);
    expect(canPublish(a, topics.status('a'))).toBe(true);
    expect(canPublish(a, topics.desired('a'))).toBe(false);
    expect(canPublish(a, topics.command('a', 'sync'))).toBe(false);
    expect(canPublish(a, topics.telemetry('ab'))).toBe(false);
    expect(clientIdAllowed(a, 'a:1')).toBe(true);
    expect(clientIdAllowed(a, 'ab')).toBe(false);
  });
});

describe('parseReported', () => {
  const good = {
    type: 'reported',
    device: 'd1',
    agentVersion: '0.1.0',
    appliedRevision: 3,
    time: '2026-01-01T00:00:00Z',
    models: [{ id: 'o/m', version: 2, activeVersion: 1, state: 'downloading', progress: { bytes: 1, total: 9 } }],
    capabilities: {
      backends: [
        { name: 'onnx', available: true },
        { name: 'tensorrt', available: false, reason: 'no SDK' },
      ],
    },
  };
  it('accepts a report from bytes', () => {
    expect(parseReported(Buffer.from(JSON.stringify(good))).models[0].progress).toEqual({ bytes: 1, total: 9 });
  });
  it.each<[string, (r: Record<string, any>) => void]>([
    [
      'unknown state',
      (r) => {
        r.models[0].state = 'done';
      },
    ],
    [
      'downloading without progress',
      (r) => {
        delete r.models[0].progress;
      },
    ],
    [
      'failed without error',
      (r) => {
        r.models[0].state = 'failed';
        delete r.models[0].progress;
      },
    ],
    [
      'bad device',
      (r) => {
        r.device = 'a/b';
      },
    ],
    [
      'no capabilities',
      (r) => {
        delete r.capabilities;
      },
    ],
    [
      'bad version',
      (r) => {
        r.models[0].activeVersion = 0;
      },
    ],
  ])('refuses %s with REPORTED_MALFORMED', (_n, mutate) => {
    const r = JSON.parse(JSON.stringify(good));
    mutate(r);
    expect(() => parseReported(r)).toThrow(expect.objectContaining({ code: 'REPORTED_MALFORMED' }));
  });
});
