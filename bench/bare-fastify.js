/**
 * The baseline of `idle-rss` and `startup`: a bare fastify app with one `/health` route, plain
 * JavaScript run by plain `node` (as `libsqlctl serve` runs compiled JavaScript, no loader).
 * `node bench/bare-fastify.js [port]` listens on 127.0.0.1 (port 0: the OS picks), prints
 * `PORT=<port>` and stops on SIGTERM, SIGINT or when stdin closes (its parent went away).
 */
import process from 'node:process';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/health', (_req, reply) => reply.code(200).send());
await app.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? '0') });
process.stdout.write(`PORT=${app.server.address().port}\n`);

const stop = () => {
  void app.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
