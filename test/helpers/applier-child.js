// Applies a stream of sqld frames (4120-byte frames, whole transactions) to a replica directory with
// the compiled FrameApplier, `perBatch` transactions per apply, resuming after what is applied.
// APPLIER_CRASH_AT=<point>[:n] makes the crash hook SIGKILL this process at that point of the n-th
// batch. Prints "applied <frame_no>" after every batch and "done" at the end.
//
// usage: node applier-child.js <namespace dir> <frames file> <log id> <transactions per batch>
import { readFileSync, writeSync } from 'node:fs';
import process from 'node:process';
import { NamespacePaths } from '../../dist/engine/data-dir.js';
import { SqliteFiles } from '../../dist/engine/files/sqlite-files.js';
import { silentLogger } from '../../dist/engine/logger.js';
import { crashHookAt, parseCrashAt } from '../../dist/engine/replica/crash-points.js';
import { FrameApplier } from '../../dist/engine/replica/frame-applier.js';
import { decodeFrame, FRAME_SIZE } from '../../dist/engine/wal/frame.js';

const [dir, framesFile, logId, perBatchArg = '1'] = process.argv.slice(2);
const perBatch = Number(perBatchArg);
const crashAt = parseCrashAt(process.env.APPLIER_CRASH_AT);
const crashHook = crashAt ? crashHookAt(crashAt, () => process.kill(process.pid, 'SIGKILL')) : undefined;

/** Groups the frames into transactions (a transaction ends at a frame with a non-zero size). */
function transactions(buf) {
  const txns = [];
  let frames = [];
  for (let offset = 0; offset < buf.length; offset += FRAME_SIZE) {
    const frame = decodeFrame(buf, offset);
    frames.push(frame);
    if (frame.sizeAfter !== 0) {
      txns.push({ firstFrameNo: frames[0].frameNo, lastFrameNo: frame.frameNo, sizeAfter: frame.sizeAfter, frames });
      frames = [];
    }
  }
  return txns;
}

const paths = new NamespacePaths(dir);
const files = SqliteFiles.open(paths);
const applier = await FrameApplier.open({ paths, files, logger: silentLogger(), crashHook });
if (applier.logId !== logId) await applier.reset(logId);
const todo = transactions(readFileSync(framesFile)).filter((t) => t.firstFrameNo >= applier.nextFrameNo);
for (let i = 0; i < todo.length; i += perBatch) {
  await applier.apply(todo.slice(i, i + perBatch));
  writeSync(1, `applied ${applier.appliedFrameNo}\n`);
}
applier.close();
files.close();
writeSync(1, 'done\n');
