import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv.close();
});

describe('CORS on the user port (browsers running @libsql/client)', () => {
  it('answers a preflight for any origin, method and header', async () => {
    const res = await fetch(`${srv.url}/v2/pipeline`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(res.headers.get('access-control-allow-methods')).toBe('*');
  });

  it('marks cross-origin answers, errors included', async () => {
    const ok = await fetch(`${srv.url}/v2/pipeline`, {
      method: 'POST',
      headers: { origin: 'https://app.example' },
      body: JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }, { type: 'close' }] }),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('*');
    const bad = await fetch(`${srv.url}/v2/pipeline`, { method: 'POST', headers: { origin: 'https://app.example' }, body: '{' });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('adds nothing for same-origin requests', async () => {
    const res = await fetch(`${srv.url}/health`);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
