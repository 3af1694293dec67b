import type { ChatMessage, DeviceRegistration, MobileOs } from '../protocol/index.js';

/** A mobile device as the registry keeps it. `token` is absent once a vendor has called it dead. */
export interface DeviceRecord {
  device: string;
  os: MobileOs;
  token?: string;
  app?: string;
  updatedAt: number;
}

/**
 * Durable device tokens (section 3: `PUT`/`DELETE /v1/users/{u}/devices/{d}`, the `register` frame).
 * Embedded: `FileDeviceRegistry`; cluster: a JetStream KV one. One contract suite runs against both.
 */
export interface DeviceRegistry {
  /** Resolves once the record is durable. */
  put(user: string, device: string, reg: DeviceRegistration): Promise<DeviceRecord>;
  /** Resolves true when a device was removed. */
  remove(user: string, device: string): Promise<boolean>;
  /** Clears the token only while it still equals `token`, so a dead-token answer never erases a newer one. */
  clearToken(user: string, device: string, token: string): Promise<boolean>;
  list(user: string): Promise<DeviceRecord[]>;
  close(): Promise<void>;
}

export type AcceptResult = 'accepted' | 'duplicate';

/**
 * Durable ingress: a message is accepted (202) only once it is on disk (embedded) or in a JetStream stream
 * (cluster), and stays there until the owner settles it. Duplicates by `id` within the window are refused.
 */
export interface Ingress {
  accept(msg: ChatMessage): Promise<AcceptResult>;
  /**
   * Starts delivering accepted messages to `handler`, first those accepted before a restart and never settled,
   * then each new one as it is accepted.
   */
  consume(handler: (msg: ChatMessage) => void): Promise<void>;
  /** The message reached a final outcome on every target: it is not replayed after a restart. */
  settle(id: string): void;
  /** Flushes and closes; pending accepts resolve or reject first. */
  close(): Promise<void>;
}
