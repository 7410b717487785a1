// The page of the React test (crates/cmdbus/tests/browser/library.rs), bundled by bundle.sh: a
// command submitted through the page's backend, its progress and result with useCommand, and
// the subject's commands with useCommands. The cmdbus URL is the body's `data-bus`.
import { createClient } from '@cmdbus/client';
import { createElement as h, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useCommand, useCommands } from '../src/index.js';

const bus = createClient({
  url: document.body.dataset.bus ?? '',
  token: () => fetch('/token').then((res) => res.text()),
});

/** @param {{ id: string }} props */
function Command({ id }) {
  const { view, state } = useCommand(bus, id);
  if (!view) return h('p', { 'data-testid': 'loading' }, 'loading');
  return h(
    'div',
    { 'data-testid': 'command', 'data-status': view.status, 'data-version': view.version },
    h('progress', { 'data-testid': 'progress', max: 1, value: view.progress ?? 0 }),
    h('span', { 'data-testid': 'state' }, state),
    h('pre', { 'data-testid': 'result' }, view.result == null ? '' : JSON.stringify(view.result)),
  );
}

function List() {
  const { views } = useCommands(bus, {});
  return h(
    'ul',
    { 'data-testid': 'list' },
    views.map((view) => h('li', { key: view.id, 'data-id': view.id, 'data-status': view.status }, view.type)),
  );
}

function App() {
  const [id, setId] = useState(/** @type {string|null} */ (null));
  useEffect(() => {
    /** @type {any} */ (window).submit = async (/** @type {string} */ type, /** @type {unknown} */ payload) => {
      const res = await fetch('/submit', { method: 'POST', body: JSON.stringify({ type, payload }) });
      const view = await res.json();
      setId(view.id);
      return view.id;
    };
    /** @type {any} */ (window).ready = true;
  }, []);
  return h('main', null, id ? h(Command, { id }) : h('p', null, 'nothing yet'), h(List));
}

const root = document.getElementById('root');
if (root) createRoot(root).render(h(App));
