/**
 * Heartbeats (spec §9): every `--heartbeat-period-s`, each namespace with a heartbeat URL — its own
 * `heartbeat_url`, else `--heartbeat-url` — has its stats document (the one `GET …/stats` answers)
 * POSTed to `<url>/<namespace>`, with `authorization: <--heartbeat-auth>`. A receiver that is down
 * or slow costs a warning per failing streak, never the server: each post is bounded by the period,
 * one round runs at a time, and the timer does not keep the process alive.
 */
import type { HeartbeatConfig } from '../../config/serve-config.js';
import { errorMessage, type Logger } from '../../engine/logger.js';
import { statsJson } from './stats-routes.js';
import type { NamespaceStatsSource } from './stats-source.js';

export interface Heartbeat {
  stop(): void;
}

/** Starts the heartbeat timer; a no-op until some namespace has a URL. */
export function startHeartbeat(config: HeartbeatConfig, stats: () => NamespaceStatsSource, logger: Logger): Heartbeat {
  const failing = new Set<string>();
  let running = false;
  const round = async (): Promise<void> => {
    const source = stats();
    await Promise.all(
      source.names().map(async (name) => {
        const status = source.status(name);
        const base = status.config.heartbeatUrl ?? config.url;
        if (base === null) return;
        const url = `${base.replace(/\/+$/, '')}/${encodeURIComponent(name)}`;
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(config.auth === null ? {} : { authorization: config.auth }) },
            body: JSON.stringify(statsJson(status)),
            signal: AbortSignal.timeout(config.periodMs),
          });
          await res.arrayBuffer();
          if (!res.ok) throw new Error(`answered ${res.status}`);
          if (failing.delete(name)) logger.info({ namespace: name }, 'heartbeat delivered again');
        } catch (err) {
          if (!failing.has(name)) logger.warn({ namespace: name, reason: errorMessage(err) }, `heartbeat to ${base} failed (retried every period; logged once until it works)`);
          failing.add(name);
        }
      }),
    );
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    round()
      .catch((err: unknown) => logger.warn({ reason: errorMessage(err) }, 'heartbeat round failed'))
      .finally(() => (running = false));
  }, config.periodMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
