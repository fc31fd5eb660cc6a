/** Fixtures of the backup format tests: Debian's gzip and zstd as independent codecs, test data, temp dirs. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { prng } from '../../helpers/prng.js';

/** Runs `cmd args` with `input` on stdin; resolves with stdout, rejects on a non-zero exit. */
export function runTool(cmd: string, args: readonly string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new Error(`${cmd} is not installed (Debian package "${cmd}"): ${e.message}`) : e),
    );
    child.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${err}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** A fresh temporary directory and its removal. */
export function makeTempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `size` bytes alternating between pseudo-random runs and repetitive text, from `seed`. */
export function testData(size: number, seed = 1): Buffer {
  const rnd = prng(seed);
  const out = Buffer.alloc(size);
  let at = 0;
  let line = 0;
  while (at < size) {
    const run = Math.min(size - at, 1 + Math.floor(rnd() * 20_000));
    if (rnd() < 0.5) {
      for (let i = 0; i < run; i++) out[at + i] = Math.floor(rnd() * 256);
      at += run;
    } else {
      const end = at + run;
      while (at < end) at += out.write(`row ${line++}: the quick brown fox jumps over the lazy dog\n`, at, end - at, 'latin1');
    }
  }
  return out;
}

/** A copy of `buf` with bit `bit` of byte `offset` inverted. */
export function flipBit(buf: Buffer, offset: number, bit = 0): Buffer {
  const copy = Buffer.from(buf);
  copy[offset] = copy[offset]! ^ (1 << bit);
  return copy;
}

/** Feeds `input` to `stream` in chunks of pseudo-random sizes (1 byte to `maxChunk`) and collects the output. */
export async function throughStream(stream: NodeJS.ReadWriteStream, input: Buffer, seed = 3, maxChunk = 65536): Promise<Buffer> {
  const rnd = prng(seed);
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length; ) {
    const n = rnd() < 0.3 ? 1 + Math.floor(rnd() * 20) : 1 + Math.floor(rnd() * maxChunk);
    chunks.push(input.subarray(at, at + n));
    at += n;
  }
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk);
      cb();
    },
  });
  await pipeline(Readable.from(chunks), stream, sink);
  return Buffer.concat(out);
}
