import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NamespacePaths } from '../../src/engine/data-dir.js';
import { parseSnapshotFileName, readSnapshot } from '../../src/engine/wal/snapshot-file.js';
import { replayIntoFile, type ReplayFrame } from '../../src/engine/wal/replay.js';
import { inspectFile, wallogHeader } from '../helpers/engine-log.js';
import { postJson, startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

const dirs: string[] = [];
const servers: TestServer[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function sql(server: TestServer, ...statements: string[]): Promise<unknown> {
  const res = await postJson(`${server.url}/v2/pipeline`, { requests: [...statements.map((s) => ({ type: 'execute', stmt: { sql: s } })), { type: 'close' }] });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

async function start(dbPath: string, flags: Record<string, unknown> = {}): Promise<TestServer> {
  const server = await startTestServer({ 'db-path': dbPath, ...flags });
  servers.push(server);
  return server;
}

async function stop(server: TestServer): Promise<void> {
  servers.splice(servers.indexOf(server), 1);
  await server.close();
}

function snapshotNames(ns: NamespacePaths): string[] {
  return fs.existsSync(ns.snapshots) ? fs.readdirSync(ns.snapshots).sort() : [];
}

/** A database rebuilt from one snapshot file alone. */
function replaySnapshot(snapPath: string, out: string): void {
  const { header, frames } = readSnapshot(snapPath);
  const list: ReplayFrame[] = [...frames].map((f) => ({ pageNo: f.pageNo, sizeAfter: 0, page: f.page }));
  list.at(-1)!.sizeAfter = header.sizeAfter;
  replayIntoFile(out, list);
}

describe('--snapshot-at-shutdown', () => {
  it('leaves the whole log in one snapshot, an empty log and an empty WAL; --snapshot-exec runs for it', async () => {
    const dir = tempDir('libsqlctl-snap-shutdown-');
    dirs.push(dir);
    const dbPath = path.join(dir, 'data.sqld');
    const record = path.join(dir, 'snapshot-exec.txt');
    const script = path.join(dir, 'on-snapshot.sh');
    fs.writeFileSync(script, `#!/bin/sh\nprintf '%s %s %s %s\\n' "$2" "$3" "$4" "$5" >> '${record}'\n`, { mode: 0o755 });
    const ns = new NamespacePaths(path.join(dbPath, 'dbs', 'default'));

    const first = await start(dbPath, { 'snapshot-at-shutdown': true, 'snapshot-exec': script });
    await sql(first, 'CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT)', ...Array.from({ length: 20 }, (_, i) => `INSERT INTO t(v) VALUES ('row ${i} ${'x'.repeat(500)}')`));
    const lastFrame = first.server.context.namespaces.peek('default')!.replicationIndex()!;
    expect(lastFrame).toBeGreaterThan(20n);
    await stop(first);

    const names = snapshotNames(ns);
    expect(names).toHaveLength(1);
    const snap = parseSnapshotFileName(names[0]!)!;
    expect([snap.startFrameNo, snap.endFrameNo]).toEqual([0n, lastFrame]);
    const log = wallogHeader(ns.wallog);
    expect(log).toMatchObject({ frameCount: 0n, startFrameNo: lastFrame + 1n, logId: snap.logId });
    expect(fs.existsSync(ns.wal) ? fs.statSync(ns.wal).size : 0).toBe(0);
    expect(fs.readFileSync(record, 'utf8').trim().split('\n')).toEqual([`default 0 ${lastFrame} ${snap.logId}`]);
    // the snapshot alone rebuilds the database
    const rebuilt = path.join(dir, 'rebuilt.db');
    replaySnapshot(ns.snapshot(names[0]!), rebuilt);
    expect(inspectFile(rebuilt).dump).toBe(inspectFile(ns.db).dump);
    expect(inspectFile(rebuilt).dump).toContain('row 19');

    // Restarted without the flag: same log, numbering goes on, and a normal shutdown keeps its frames.
    const second = await start(dbPath);
    expect(await sql(second, 'SELECT count(*) FROM t')).toMatchObject({ results: [{ response: { result: { rows: [[{ value: '20' }]] } } }, expect.anything()] });
    await sql(second, "INSERT INTO t(v) VALUES ('after')");
    expect(second.server.context.namespaces.peek('default')!.replicationIndex()).toBeGreaterThan(lastFrame);
    await stop(second);
    expect(snapshotNames(ns)).toEqual(names);
    expect(wallogHeader(ns.wallog)).toMatchObject({ logId: snap.logId, startFrameNo: lastFrame + 1n });
    expect(wallogHeader(ns.wallog).frameCount).toBeGreaterThan(0n);
  });
});
