/** Hrana-over-HTTP requests for tests that talk to a server process with plain fetch. */

export type Json = Record<string, unknown>;

export const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One `/v2/pipeline` call on a new stream (closed at the end), bounded by `timeoutMs`. */
export async function pipeline(url: string, requests: Json[], timeoutMs = 10_000): Promise<{ status: number; body: unknown; raw: string }> {
  const res = await fetch(`${url}/v2/pipeline`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ baton: null, requests: [...requests, { type: 'close' }] }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const raw = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(raw) as unknown;
  } catch {
    // not JSON: the caller reports `raw`
  }
  return { status: res.status, body, raw };
}
