// @cmdbus/react: React hooks over a @cmdbus/client client. The client does the work (transports,
// resume, de-duplication, tokens); the hooks hold its views in React state and let go of what
// they follow when the component unmounts or its arguments change.
//   useCommand(client, id)       one command's newest view, and the connection state
//   useCommands(client, filter)  a live list: the first page of `list(filter)`, kept up to date
//   useConnectionState(client)   `live` | `reconnecting` | `polling`

import { useEffect, useState, useSyncExternalStore } from 'react';

/** @typedef {import('@cmdbus/client').Client} Client */
/** @typedef {import('@cmdbus/client').CommandView} CommandView */
/** @typedef {import('@cmdbus/client').ListFilter} ListFilter */
/** @typedef {import('@cmdbus/client').ConnectionState} ConnectionState */

/**
 * How the client receives changes now; re-renders when it changes.
 * @param {Client} client
 * @returns {ConnectionState}
 */
export function useConnectionState(client) {
  return useSyncExternalStore(
    (changed) => client.onState(changed),
    () => client.state,
  );
}

/**
 * One command, live: `view` is undefined until the first view arrives, then the newest one.
 * @param {Client} client
 * @param {string|null|undefined} id nothing is followed without one
 * @returns {{ view: CommandView|undefined, state: ConnectionState }}
 */
export function useCommand(client, id) {
  const [view, setView] = useState(/** @type {CommandView|undefined} */ (undefined));
  const state = useConnectionState(client);
  useEffect(() => {
    setView(undefined);
    if (!id) return undefined;
    const command = client.watch(id);
    const unsubscribe = command.subscribe(setView);
    return () => {
      unsubscribe();
      command.close();
    };
  }, [client, id]);
  return { view, state };
}

/**
 * A live list of commands: the first page of `client.list(filter)`, newest first, with every
 * later change in reach applied (a command that starts matching `status`/`type` joins it, one
 * that stops matching leaves it); read again after a reset.
 * @param {Client} client
 * @param {ListFilter} [filter]
 * @returns {{ views: CommandView[], state: ConnectionState, error: Error|null }}
 */
export function useCommands(client, filter = {}) {
  const [views, setViews] = useState(/** @type {CommandView[]} */ ([]));
  const [error, setError] = useState(/** @type {Error|null} */ (null));
  const state = useConnectionState(client);
  const key = JSON.stringify(filter);
  useEffect(() => {
    /** @type {ListFilter} */
    const wanted = JSON.parse(key);
    /** @type {Map<string, CommandView>} */
    const held = new Map();
    let live = true;
    /** @param {CommandView} view */
    const matches = (view) =>
      (!wanted.status || view.status === wanted.status) && (!wanted.type || view.type === wanted.type);
    const publish = () => {
      if (!live) return;
      setViews([...held.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)));
    };
    /** @param {CommandView} view */
    const take = (view) => {
      const before = held.get(view.id);
      if (before && before.version >= view.version) return;
      if (matches(view)) held.set(view.id, view);
      else held.delete(view.id);
      publish();
    };
    const load = () =>
      client.list(wanted).then(
        (page) => {
          for (const view of page.items) take(view);
          setError(null);
        },
        (/** @type {Error} */ err) => live && setError(err),
      );
    const stream = client.watchMany({ all: true }, take, { onReset: load });
    load();
    return () => {
      live = false;
      stream.close();
    };
  }, [client, key]);
  return { views, state, error };
}
