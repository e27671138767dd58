import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseS3Flags } from '../../cloud-broker/artifacts/index.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { cleanEnv, runInProcess } from '../helpers/cli.js';
import { closedPort, REPO } from '../helpers/daemon-process.js';
import { startS3rver, type S3Server } from '../helpers/engines/s3rver.js';
import { useTempDir } from '../helpers/temp-dir.js';

// `outpost cloud start`'s blob-store flags: what they parse to, how they refuse, and that the
// AWS SDK is loaded only when S3 is chosen (a real child process counts the SDK's modules).
const tmp = useTempDir('outpost-bsf-', 'all');
let s3: S3Server;

beforeAll(async () => {
  s3 = await startS3rver(tmp.dir);
});
afterAll(async () => {
  await s3?.stop();
});

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (err) {
    return err instanceof OutpostError ? err.code : String(err);
  }
  return undefined;
};

/** The CLI in a child process; resolves with its exit code, stderr, and the SDK modules it loaded. */
function probe(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string; sdk: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/helpers/sdk-load-probe.ts'), ...args], {
    // The repository's folder, where node finds tsx.
    cwd: REPO,
    env: cleanEnv({ HOME: tmp.dir, ...env }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /aws-sdk-modules (\d+)\s*$/.exec(stderr);
      if (!m) reject(new Error(`the probe printed no count (exit ${code}): ${stderr.slice(-2000)}`));
      else resolve({ code: code ?? -1, stderr, sdk: Number(m[1]) });
    });
  });
}

describe('--blob-store flags', () => {
  it('parse s3://BUCKET[/PREFIX] with path-style addressing for an endpoint and virtual-hosted on AWS', () => {
    expect(parseS3Flags({ store: 's3://models/fleet/eu/', endpoint: 'http://127.0.0.1:9000/' })).toEqual({
      kind: 's3',
      bucket: 'models',
      prefix: 'fleet/eu/',
      endpoint: 'http://127.0.0.1:9000',
      region: undefined,
      forcePathStyle: true,
    });
    expect(parseS3Flags({ store: 's3://my.models', region: 'eu-central-1' })).toMatchObject({
      prefix: '',
      forcePathStyle: false,
      region: 'eu-central-1',
    });
    expect(parseS3Flags({ store: 's3://models', endpoint: 'https://s3.example', addressing: 'virtual' })).toMatchObject(
      { forcePathStyle: false },
    );
  });

  it.each([
    ['s3://UPPER'],
    ['s3://ab'],
    ['s3://key:secret@models'],
    ['s3://models:9000'],
    ['s3://models/a/../b'],
    ['s3://models?x=1'],
    ['/var/lib/blobs'],
    ['https://models.s3.amazonaws.com'],
  ])('refuse --blob-store %s with CLOUD_BLOB_STORE_FLAGS', (store) => {
    expect(codeOf(() => parseS3Flags({ store }))).toBe('CLOUD_BLOB_STORE_FLAGS');
  });

  it('refuse a bad endpoint, region or addressing', () => {
    for (const f of [
      { endpoint: 'ftp://x' },
      { endpoint: 'http://u:p@host' },
      { endpoint: 'http://host/path' },
      { region: 'Mars 1' },
      { addressing: 'dns' },
    ])
      expect(
        codeOf(() => parseS3Flags({ store: 's3://models', ...f })),
        JSON.stringify(f),
      ).toBe('CLOUD_BLOB_STORE_FLAGS');
  });

  it('exclude --blob-dir, and need --blob-store for every --s3-* flag (exit 2)', async () => {
    const env = cleanEnv({ HOME: tmp.dir });
    const dataDir = join(tmp.dir, 'never');
    for (const extra of [
      ['--blob-dir', 'b', '--blob-store', 's3://models'],
      ['--s3-endpoint', 'http://127.0.0.1:9000'],
      ['--blob-dir', 'b', '--s3-region', 'eu-west-1'],
    ]) {
      const run = await runInProcess(['cloud', 'start', '--data-dir', dataDir, ...extra], { cwd: tmp.dir, env });
      expect(run.code, run.stderr).toBe(2);
      expect(run.errorCode()).toBe('CLOUD_BLOB_STORE_FLAGS');
    }
  });
});

describe('cloud start on S3', () => {
  it('stops with exit 7 BLOB_STORE_UNAVAILABLE when the endpoint is down, and never prints the secret', async () => {
    const run = await probe(
      [
        'cloud',
        'start',
        '--data-dir',
        join(tmp.dir, 'down'),
        '--http-port',
        '0',
        '--blob-store',
        's3://models',
        '--s3-endpoint',
        `http://127.0.0.1:${await closedPort()}`,
      ],
      { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'hunter2-secret', OUTPOST_LOG_LEVEL: 'debug' },
    );
    expect(run.code, run.stderr).toBe(7);
    expect(run.stderr).toContain('BLOB_STORE_UNAVAILABLE');
    expect(run.stderr).not.toContain('hunter2-secret');
  });

  it('loads the AWS SDK only when S3 is chosen: not for --help, not for a cloud on a folder', async () => {
    const help = await probe(['--help']);
    expect(help.code).toBe(0);
    expect(help.sdk).toBe(0);
    const folder = await probe(['cloud', 'start', '--data-dir', join(tmp.dir, 'folder'), '--http-port', '0']);
    expect(folder.code, folder.stderr).toBe(0);
    expect(folder.sdk).toBe(0);
    // The same count, for a cloud that does use S3, is not zero: the probe sees the SDK.
    const bucket = await probe(
      [
        'cloud',
        'start',
        '--data-dir',
        join(tmp.dir, 'bucket'),
        '--http-port',
        '0',
        '--blob-store',
        `s3://${s3.bucket}/probe`,
        '--s3-endpoint',
        s3.url,
      ],
      s3.env,
    );
    expect(bucket.code, bucket.stderr).toBe(0);
    expect(bucket.sdk).toBeGreaterThan(0);
  }, 60_000);
});
