import type { ChannelOptions } from '@grpc/grpc-js';

/** Message limits shared by servers and clients, set on purpose rather than left at library defaults. */
export function channelOptions(maxMessageBytes: number): ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  };
}
