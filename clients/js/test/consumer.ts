// Type-checked by check.sh against dist/index.d.ts, as a TypeScript application would use the
// package: a wrong declaration (or a stale one) fails here.
import { createClient, type CommandView, type ConnectionState } from '../dist/index.js';

const bus = createClient({ url: 'https://bus.example.com', token: async () => 'token' });
const state: ConnectionState = bus.state;
bus.onState((s: ConnectionState) => s === 'polling');
async function run(): Promise<string> {
  const view: CommandView = await bus.submit('demo.sleep', { ms: 10 }, { idempotencyKey: 'k', priority: 3 });
  const cmd = bus.watch(view.id);
  const stop = cmd.subscribe((v) => console.log(v.progress, v.status));
  const done = await cmd.done({ rejectOnFailure: true });
  stop();
  const page = await bus.list({ status: 'running' });
  bus.watchMany({ all: true }, (v) => v.version);
  bus.watchMany({ ids: page.items.map((v) => v.id) }, () => {});
  bus.close();
  return `${state} ${done.status} ${(await bus.get(view.id)).version}`;
}
void run;
