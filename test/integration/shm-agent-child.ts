import { join } from 'node:path';
import { CONV_SIZE, writeConvNetFolder } from '../../bench/_convnet.js';
import { startAgent } from './api-harness.js';

/**
 * A real agent API in a process of its own for test/integration/api-shm-shrink.test.ts, so that
 * a client shrinking its shared-memory object can only kill this child, never the test runner:
 * the classifier fixture and the conv net of bench/_convnet.ts (a model that computes ~1-2 ms,
 * so a client can truncate during a run), all on the event loop (onnx workers: 0, so inputs are
 * read in place by onnxruntime), or with OUTPOST_TEST_WORKERS=1 all on a worker thread (inputs
 * copied from the mapping into the worker's transfer buffer). OUTPOST_SHM passes through from
 * the parent. Prints one JSON line {socket, dir, classifier, conv}; SIGTERM closes it.
 */
const onnx = process.env.OUTPOST_TEST_WORKERS === '1' ? { workers: 1, workerMinMicros: 0 } : { workers: 0 };
const h = await startAgent({ kinds: ['classifier'], onnx, limits: { maxConcurrentPerModel: 64 } });
const convDir = join(h.dir, 'conv');
await writeConvNetFolder(convDir, 'acme/conv');
await h.runtime.activate('acme/conv', 1, convDir);
const fx = h.fixtures.classifier!;
process.stdout.write(
  `${JSON.stringify({
    socket: h.socket,
    dir: h.dir,
    classifier: { id: 'acme/classifier', file: join(fx.dir, 'model.onnx'), shape: [1, 3, fx.size[1], fx.size[0]] },
    conv: { id: 'acme/conv', file: join(convDir, 'model.onnx'), shape: [1, 3, CONV_SIZE, CONV_SIZE] },
  })}\n`,
);
process.once('SIGTERM', () => void h.close().then(() => process.exit(0)));
