/**
 * Encoders and decoders of the gRPC messages (src/rpc/messages.ts), built with protobufjs from our
 * .proto files in proto/. (Being written: see the plan.)
 */

/** A message type's wire codec. decode() throws ProtoDecodeError for bytes that are not that message. */
export interface MessageCodec<T> {
  encode(msg: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** Bytes that do not decode as the expected message (the transports answer INVALID_ARGUMENT or INTERNAL). */
export class ProtoDecodeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtoDecodeError';
  }
}
