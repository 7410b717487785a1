// The library's types in one place: the wire types generated from the server's OpenAPI
// description (wire.d.ts, by build.mjs; never edited by hand), and the WebSocket's messages,
// which OpenAPI cannot describe (docs/protocol.md).

/** @typedef {import('./wire.js').components['schemas']['CommandView']} CommandView */
/** @typedef {import('./wire.js').components['schemas']['Problem']} Problem */
/** @typedef {import('./wire.js').components['schemas']['Page']} Page */
/** @typedef {import('./wire.js').components['schemas']['Status']} Status */
/** @typedef {NonNullable<import('./wire.js').operations['listCommands']['parameters']['query']>} ListFilter */

/**
 * Who is followed: chosen commands, or every command the credential reaches (a tenant's for a
 * key; a browser token's subject or ids).
 * @typedef {{ ids: string[] } | { all: true }} Selection
 */

/**
 * How changes arrive now: `live` (a WebSocket or an event stream is subscribed), `reconnecting`
 * (none is: the library is trying again), `polling` (the HTTP change feed answers).
 * @typedef {'live'|'reconnecting'|'polling'} ConnectionState
 */

/**
 * A message of `/v1/ws` from the server.
 * @typedef {{op: 'authenticated', tenant: string, scopes: string[], expires_at?: number}
 *   | {op: 'subscribed', cursor: string}
 *   | {op: 'command', command: CommandView, cursor?: string}
 *   | {op: 'renew', expires_at?: number}
 *   | {op: 'reset', cursor?: string}
 *   | {op: 'error', code: string, message?: string}} ServerMessage
 */

/** The answer of `GET /v1/changes`. @typedef {import('./wire.js').components['schemas']['ChangesPage']} Changes */

export {};
