/**
 * The metadata header a replica sends its `--grpc-node-secret` in (docs/REPLICATION.md). Its own
 * module so that a primary checks it without loading the gRPC client.
 */
export const NODE_SECRET_HEADER = 'x-libsqlctl-node-secret';
