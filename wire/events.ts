import { z } from 'zod';
import { SANDBOX_STATES, SandboxDto } from './sandbox';

/**
 * Sandbox state events, the channel of Daytona's notification gateway that the SDK (0.2xx) opens by itself: Socket.IO
 * (protocol 5, Engine.IO 4) at `{apiUrl}/socket.io/` — `/api/socket.io/` on a Cove server — over WebSocket (long
 * polling works too).
 *
 * - The client authenticates in the Socket.IO handshake: `auth: { token: <API key> }` (or `Authorization: Bearer` on
 *   the HTTP request). A missing or invalid key is refused with a `connect_error` whose message says so and whose
 *   `data` is `{ code: 'UNAUTHORIZED', source: 'DAYTONA_API' }`. The SDK's query (`organizationId`, `source`,
 *   `sdkVersion`) is accepted and changes nothing: a key sees what it may use through the REST API.
 * - server → client, in the default namespace: {@link SANDBOX_EVENTS} for the sandboxes the key may use (all of them
 *   for an admin key), in the order the states changed. Each carries the sandbox as `GET /api/sandbox/{id}` answers
 *   it at that moment.
 * - client → server: nothing is expected; events are ignored. A Socket.IO message is at most 64 KiB.
 * - A connection whose key is revoked is disconnected before the next event is sent.
 */
export const SANDBOX_EVENTS = {
  /** A sandbox was made (its first state): the payload is the sandbox itself ({@link SandboxCreatedEvent}). */
  created: 'sandbox.created',
  /** A sandbox's state changed: {@link SandboxStateUpdatedEvent}. */
  stateUpdated: 'sandbox.state.updated',
} as const;

/** A state in an event: a sandbox's states, and `destroyed` once it is deleted (what the SDK's `delete` waits for). */
const EventSandboxState = z.enum([...SANDBOX_STATES, 'destroyed']);

/** `sandbox.created`: the sandbox, as the REST API returns it. */
export const SandboxCreatedEvent = SandboxDto;
export type SandboxCreatedEvent = z.infer<typeof SandboxCreatedEvent>;

/** `sandbox.state.updated`: the sandbox after the change (`state` is `newState`), and the states before and after. */
export const SandboxStateUpdatedEvent = z.object({
  sandbox: SandboxDto.extend({ state: EventSandboxState }),
  oldState: EventSandboxState,
  newState: EventSandboxState,
});
export type SandboxStateUpdatedEvent = z.infer<typeof SandboxStateUpdatedEvent>;
