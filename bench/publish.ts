/**
 * Cloud-side transfer cost: publishing a large model file (streaming hash + PUT /v1/blobs +
 * version) and downloading it back with a hash check, against moving the same bytes over
 * loopback HTTP to a bare node:http server that checks nothing. Both servers run as child
 * processes so their peak RSS (VmHWM) can be compared; the client side is this process.
 *
 * The same cloud is then run on an S3 bucket (`--blob-store`, s3rver in a third child process:
 * a fake S3 on loopback that writes files itself, so this prices the proxying and the multipart
 * path against the folder store in the same run, not what AWS S3 would cost).
 *
 * Size: OUTPOST_BENCH_MB (default 500).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { CloudClient } from '../cloud-broker/client/cloud-client.js';
import type { BenchRow } from './run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MB = Number(process.env.OUTPOST_BENCH_MB ?? 500);

// A bare server: PUT streams the body to a file, GET streams the file back. No auth, no hashing.
const BARE_SERVER = `
const http = require('node:http'); const fs = require('node:fs'); const { pipeline } = require('node:stream');
const file = process.argv[1];
http.createServer((req, res) => {
  if (req.method === 'PUT') pipeline(req, fs.createWriteStream(file), (e) => { res.statusCode = e ? 500 : 201; res.end(); });
  else { const st = fs.statSync(file); res.setHeader('content-length', st.size); pipeline(fs.createReadStream(file), res, () => {}); }
}).listen(0, '127.0.0.1', function () { console.log(JSON.stringify({ http: 'http://127.0.0.1:' + this.address().port })); });
`;

async function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

/** Peak resident set of a live process in MB (Linux /proc). */
async function peakRssMb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function makeFile(file: string, mb: number): Promise<void> {
  const block = randomBytes(1024 * 1024);
  const out = createWriteStream(file);
  for (let i = 0; i < mb; i++) {
    block.writeUInt32LE(i, 0); // every MiB differs, so the file does not compress or dedupe
    if (!out.write(Buffer.from(block))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** GET a URL into a file, hashing as it streams when `verify` is given. */
async function download(url: string, headers: Record<string, string>, dest: string, verify?: string): Promise<void> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(url, { headers }, resolve).on('error', reject),
  );
  if (res.statusCode !== 200) throw new Error(`GET ${url} answered ${res.statusCode}`);
  const h = createHash('sha256');
  const tap = new Transform({
    transform(c: Buffer, _e, cb) {
      if (verify) h.update(c);
      cb(null, c);
    },
  });
  await pipeline(res, tap, createWriteStream(dest));
  if (verify && h.digest('hex') !== verify) throw new Error('downloaded bytes do not match');
}

async function bare(file: string, work: string): Promise<{ up: number; down: number; rss: number }> {
  const child = spawn(process.execPath, ['-e', BARE_SERVER, path.join(work, 'bare.bin')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const { http: url } = JSON.parse(await firstLine(child)) as { http: string };
    const size = (await fs.stat(file)).size;
    const up = await timed(async () => {
      await new Promise<void>((resolve, reject) => {
        const req = http.request(url, { method: 'PUT', headers: { 'content-length': size } }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        createReadStream(file).pipe(req);
      });
    });
    const down = await timed(() => download(url, {}, path.join(work, 'bare-down.bin')));
    return { up, down, rss: await peakRssMb(child.pid!) };
  } finally {
    await stop(child);
    await fs.rm(path.join(work, 'bare.bin'), { force: true });
    await fs.rm(path.join(work, 'bare-down.bin'), { force: true });
  }
}

// s3rver in its own process, so its hashing and writes are not charged to the bench client.
const S3_SERVER = `
const S3rver = require('s3rver');
new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.argv[1], configureBuckets: [{ name: 'bench' }] })
  .run().then((a) => console.log(JSON.stringify({ http: 'http://127.0.0.1:' + a.port })));
`;

async function outpost(file: string, work: string, s3?: string): Promise<{ up: number; down: number; rss: number }> {
  const dataDir = path.join(work, 'cloud');
  const store = s3 ? ['--blob-store', 's3://bench/models', '--s3-endpoint', s3] : [];
  const creds = s3 ? { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } : {};
  const child = spawn(
    process.execPath,
    [
      path.join(ROOT, 'cloud-broker/cli/outpost.js'),
      'cloud',
      'start',
      '--data-dir',
      dataDir,
      '--http-port',
      '0',
      '--json',
      ...store,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, OUTPOST_LOG_LEVEL: 'warn', ...creds } },
  );
  try {
    const info = JSON.parse(await firstLine(child)) as { http: string; adminTokenFile: string };
    const client = new CloudClient({ url: info.http, token: (await fs.readFile(info.adminTokenFile, 'utf8')).trim() });
    const size = (await fs.stat(file)).size;
    let sha = '';
    // What `outpost model publish` does on the wire: hash, HEAD, PUT, create the version.
    const up = await timed(async () => {
      sha = await hashFile(file);
      if (!(await client.hasBlob(sha))) await client.putBlob(sha, size, createReadStream(file));
      await client.createVersion('bench', 'big', {
        manifest: { id: 'bench/big', model_parameters: { model_file: 'model.bin' } },
        files: [{ path: 'model.bin', sha256: sha, size }],
      });
    });
    const down = await timed(async () => {
      const v = await client.getVersion('bench/big', 'latest');
      await download(
        client.blobUrl(v.files[0].sha256),
        client.authHeaders(),
        path.join(work, 'down.bin'),
        v.files[0].sha256,
      );
    });
    return { up, down, rss: await peakRssMb(child.pid!) };
  } finally {
    await stop(child);
    await fs.rm(dataDir, { recursive: true, force: true });
    await fs.rm(path.join(work, 'down.bin'), { force: true });
  }
}

export async function run(): Promise<BenchRow[]> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-bench-publish-'));
  try {
    const file = path.join(work, 'model.bin');
    await makeFile(file, MB);
    const b = await bare(file, work);
    const o = await outpost(file, work);
    const s3Dir = path.join(work, 's3rver');
    await fs.mkdir(s3Dir);
    const s3Child = spawn(process.execPath, ['-e', S3_SERVER, s3Dir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let s: { up: number; down: number; rss: number };
    try {
      const { http: s3Url } = JSON.parse(await firstLine(s3Child)) as { http: string };
      s = await outpost(file, work, s3Url);
    } finally {
      await stop(s3Child);
    }
    const mbps = (s: number): number => MB / s;
    const clientRss = process.resourceUsage().maxRSS / 1024;
    return [
      {
        name: `publish ${MB} MB`,
        metric: 'MB/s',
        ours: mbps(o.up),
        baseline: mbps(b.up),
        baselineName: 'bare PUT',
        ratio: o.up / b.up,
        note: 'ratio = our time / bare time (hash + HEAD + PUT with server-side hash + version)',
      },
      {
        name: `download ${MB} MB`,
        metric: 'MB/s',
        ours: mbps(o.down),
        baseline: mbps(b.down),
        baselineName: 'bare GET',
        ratio: o.down / b.down,
        note: 'ratio = our time / bare time (auth + client-side hash)',
      },
      {
        name: 'cloud peak RSS',
        metric: 'MB',
        ours: o.rss,
        baseline: b.rss,
        baselineName: 'bare server',
        ratio: o.rss / b.rss,
        note: 'VmHWM of the server process; flat means independent of file size',
      },
      {
        name: `publish ${MB} MB, S3 store`,
        metric: 'MB/s',
        ours: mbps(s.up),
        baseline: mbps(o.up),
        baselineName: 'folder store',
        ratio: s.up / o.up,
        note: 'ratio = S3 time / folder time; multipart to s3rver (a fake S3 on loopback)',
      },
      {
        name: `download ${MB} MB, S3 store`,
        metric: 'MB/s',
        ours: mbps(s.down),
        baseline: mbps(o.down),
        baselineName: 'folder store',
        ratio: s.down / o.down,
        note: 'ratio = S3 time / folder time; GetObject streamed through the replica',
      },
      {
        name: 'cloud peak RSS, S3 store',
        metric: 'MB',
        ours: s.rss,
        baseline: o.rss,
        baselineName: 'folder store',
        ratio: s.rss / o.rss,
        note: 'VmHWM; flat means the S3 path streams too (the SDK adds its own code)',
      },
      {
        name: 'client peak RSS',
        metric: 'MB',
        ours: clientRss,
        note: 'this process (both runs); streams, never buffers the file',
      },
    ];
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
