import { SANDBOX_EVENTS, type SandboxCreatedEvent, type SandboxStateUpdatedEvent } from '../../../wire/events';
import type { SandboxDto } from '../../../wire/sandbox';
import type { Principal } from '../auth/api-keys';
import type { SandboxChange, SandboxRecord } from '../sandboxes/repo';

/**
 * Sandbox state events (wire/events.ts) made of the sandbox repo's changes, and who may receive them. Knows nothing of
 * Socket.IO or HTTP: the gateway (gateway.ts) sends what this decides.
 */

/** One event to send: its name and payload, and the key owning the sandbox it is about. */
export type SandboxEvent =
  | { name: typeof SANDBOX_EVENTS.created; ownerKeyId: string; payload: SandboxCreatedEvent }
  | { name: typeof SANDBOX_EVENTS.stateUpdated; ownerKeyId: string; payload: SandboxStateUpdatedEvent };

/**
 * The event a change means, with the sandbox as the REST API shows it (`toDto`: no agent token, nor any other secret
 * of Cove's). An insert is `sandbox.created`; a state change and a removal are `sandbox.state.updated`, the removal
 * with the last record and the state `destroyed`.
 */
export function eventOf(change: SandboxChange, toDto: (record: SandboxRecord) => SandboxDto): SandboxEvent {
  const ownerKeyId = change.record.ownerKeyId;
  const dto = toDto(change.record);
  switch (change.kind) {
    case 'inserted':
      return { name: SANDBOX_EVENTS.created, ownerKeyId, payload: dto };
    case 'state':
      return { name: SANDBOX_EVENTS.stateUpdated, ownerKeyId, payload: { sandbox: dto, oldState: change.previousState, newState: dto.state } };
    case 'removed':
      return {
        name: SANDBOX_EVENTS.stateUpdated,
        ownerKeyId,
        payload: { sandbox: { ...dto, state: 'destroyed' }, oldState: dto.state, newState: 'destroyed' },
      };
  }
}

/** The room of admin keys' connections: they may use every sandbox, so they hear of all. */
const ADMIN_ROOM = 'admin';

/** The room of one key's connections (prefixed, so no key id can name the admin room). */
const ownerRoom = (keyId: string): string => `key:${keyId}`;

/** The one room a connection joins: what its key may use decides what it hears (as `mayUse` of the sandbox service). */
export const roomOf = (principal: Principal): string => (principal.admin ? ADMIN_ROOM : ownerRoom(principal.keyId));

/** The rooms an event about a sandbox of `ownerKeyId` goes to: its owner's and the admins'. */
export const audienceOf = (event: Pick<SandboxEvent, 'ownerKeyId'>): string[] => [ownerRoom(event.ownerKeyId), ADMIN_ROOM];
