/**
 * The methods of sqld's services as both ends see them: path and message codecs (spec §6.1). The
 * server's ServiceDefs add handlers to these; the replica's client calls them.
 */
import type * as m from './messages.js';
import { codecs, type MessageCodec } from './proto.js';

export interface MethodRef<Req, Res> {
  readonly path: string;
  readonly request: MessageCodec<Req>;
  readonly response: MessageCodec<Res>;
}

function method<Req, Res>(path: string, request: MessageCodec<Req>, response: MessageCodec<Res>): MethodRef<Req, Res> {
  return { path, request, response };
}

export const replicationLog = {
  hello: method<m.HelloRequest, m.HelloResponse>('/wal_log.ReplicationLog/Hello', codecs.HelloRequest, codecs.HelloResponse),
  logEntries: method<m.LogOffset, m.WireFrame>('/wal_log.ReplicationLog/LogEntries', codecs.LogOffset, codecs.Frame),
  batchLogEntries: method<m.LogOffset, m.Frames>('/wal_log.ReplicationLog/BatchLogEntries', codecs.LogOffset, codecs.Frames),
  snapshot: method<m.LogOffset, m.WireFrame>('/wal_log.ReplicationLog/Snapshot', codecs.LogOffset, codecs.Frame),
} as const;

export const proxy = {
  streamExec: method<m.ExecReq, m.ExecResp>('/proxy.Proxy/StreamExec', codecs.ExecReq, codecs.ExecResp),
  execute: method<m.ProgramReq, m.ExecuteResults>('/proxy.Proxy/Execute', codecs.ProgramReq, codecs.ExecuteResults),
  describe: method<m.DescribeRequest, m.DescribeResult>('/proxy.Proxy/Describe', codecs.DescribeRequest, codecs.DescribeResult),
  disconnect: method<m.DisconnectMessage, Record<string, never>>('/proxy.Proxy/Disconnect', codecs.DisconnectMessage, codecs.Ack),
} as const;
