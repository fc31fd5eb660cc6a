import { decodeWsClientMsg, encodeWsServerMsg } from '../hrana/protobuf/ws.js';
import type { WsServerMsg } from '../hrana/protobuf/shapes.js';
import { ProtobufDecodeError } from '../hrana/protobuf/wire.js';
import { checkClientMsg, decodeClientMsg, WsDecodeError, type ClientMsg } from './ws-messages.js';

/**
 * How the messages of one WebSocket subprotocol travel (spec §5.2): JSON in text frames
 * (`hrana1`-`hrana3`) or protobuf in binary frames (`hrana3-protobuf`). A frame of the other kind
 * closes the connection with 1003, with `wrongFrameReason`.
 */
export interface WsCodec {
  readonly binaryFrames: boolean;
  readonly wrongFrameReason: string;
  /** Throws WsDecodeError for a malformed message (close 1007). */
  decode(data: Buffer): ClientMsg;
  /** The message's bytes (UTF-8 JSON for the text codec): measured and sent without converting again. */
  encode(msg: WsServerMsg): Buffer;
}

export const jsonCodec: WsCodec = {
  binaryFrames: false,
  wrongFrameReason: 'Received a binary WebSocket message, which is not supported with JSON encoding',
  decode: (data) => decodeClientMsg(data.toString('utf8')),
  encode: (msg) => Buffer.from(JSON.stringify(msg)),
};

export const protobufCodec: WsCodec = {
  binaryFrames: true,
  wrongFrameReason: 'Received a text WebSocket message, which is not supported with Protobuf encoding',
  decode(data) {
    try {
      return checkClientMsg(decodeWsClientMsg(data));
    } catch (err) {
      if (err instanceof ProtobufDecodeError) throw new WsDecodeError(err.message, 'Protobuf');
      if (err instanceof WsDecodeError) throw new WsDecodeError(err.detail, 'Protobuf');
      throw err;
    }
  },
  encode: encodeWsServerMsg,
};
