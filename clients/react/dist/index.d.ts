/** @typedef {import('@cmdbus/client').Client} Client */
/** @typedef {import('@cmdbus/client').CommandView} CommandView */
/** @typedef {import('@cmdbus/client').ListFilter} ListFilter */
/** @typedef {import('@cmdbus/client').ConnectionState} ConnectionState */
/**
 * How the client receives changes now; re-renders when it changes.
 * @param {Client} client
 * @returns {ConnectionState}
 */
export function useConnectionState(client: Client): ConnectionState;
/**
 * One command, live: `view` is undefined until the first view arrives, then the newest one.
 * @param {Client} client
 * @param {string|null|undefined} id nothing is followed without one
 * @returns {{ view: CommandView|undefined, state: ConnectionState }}
 */
export function useCommand(client: Client, id: string | null | undefined): {
    view: CommandView | undefined;
    state: ConnectionState;
};
/**
 * A live list of commands: the first page of `client.list(filter)`, newest first, with every
 * later change in reach applied (a command that starts matching `status`/`type` joins it, one
 * that stops matching leaves it); read again after a reset.
 * @param {Client} client
 * @param {ListFilter} [filter]
 * @returns {{ views: CommandView[], state: ConnectionState, error: Error|null }}
 */
export function useCommands(client: Client, filter?: ListFilter): {
    views: CommandView[];
    state: ConnectionState;
    error: Error | null;
};
export type Client = import("@cmdbus/client").Client;
export type CommandView = import("@cmdbus/client").CommandView;
export type ListFilter = import("@cmdbus/client").ListFilter;
export type ConnectionState = import("@cmdbus/client").ConnectionState;
