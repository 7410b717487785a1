// @cmdbus/client declarations: built by clients/js/build.mjs from src/ (do not edit).

// ---- wire.js
export interface paths {
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness: the process serves HTTP. */
        get: operations["healthz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Prometheus metrics.
         * @description The roles' own counters and, read from PostgreSQL at each scrape, how many commands are
         *     `new`, `queue` and `running`. Needs `Authorization: Bearer <CMDBUS_METRICS_TOKEN>` when the
         *     token is set; without it, open on a loopback listener only.
         */
        get: operations["metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/openapi.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** This description (OpenAPI 3.1). */
        get: operations["openapi"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readiness: PostgreSQL answers and, for a role that needs it (every role but the notifier), a
         *     broker session is up; and no graceful stop is under way.
         */
        get: operations["readyz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The operators' audit trail.
         * @description One row per bulk cancel, bulk retry, bulk discard (not their dry runs), pause and resume,
         *     and per schedule created, paused, resumed or deleted by the caller's tenant, newest first:
         *     who, when, the filter or selection, and how many commands it changed. Page with `before`
         *     (the previous page's `next`). API keys only: a browser token,
         *     limited to a subject or ids, is refused.
         */
        get: operations["listAudit"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/changes": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The changes since a cursor.
         * @description Every change of the commands the caller reaches (or only `ids`) committed after `since`, the
         *     latest view of each, oldest change first. With nothing new, waits up to `wait` seconds for a
         *     change. A cursor from the future answers `409`, one that owes more than 5,000 changes `410`:
         *     both carry `code: "reset"` and a fresh `cursor`; reload what you show and go on from it.
         */
        get: operations["listChanges"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List and search commands, newest first. */
        get: operations["listCommands"];
        put?: never;
        /**
         * Submit a command.
         * @description The command is recorded before anything is published; the answer says `queue` once the
         *     broker confirmed its message (or `new` when the confirm takes longer, and it moves on). One
         *     with a `run_at` (or `delay`) to come is answered `scheduled`: it waits in PostgreSQL, and
         *     the api's sweep publishes it once due.
         */
        post: operations["submitCommand"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/batch": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Submit up to 1,000 commands at once.
         * @description Each command is checked like a single submit; those that pass are recorded in one
         *     transaction and published in one burst of confirms. The answer is `200` with a result per
         *     command, in order: `202`, `200` (an idempotent repeat) or the problem that refused it. The
         *     quota of unfinished commands and the rate limit count commands: a batch past either is
         *     refused whole (`429`), with nothing recorded.
         */
        post: operations["submitCommands"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Cancel commands in bulk.
         * @description Every unfinished command of the caller's tenant that matches the selection (`ids`) and the
         *     filter: one that has not started is `cancelled` at once, a running one is asked to stop.
         *     `dry_run` only counts, and answers `until`: the action sent with that `until` and the count
         *     as `limit` cancels no more than the preview counted, however many commands arrive meanwhile.
         *     Recorded in the audit trail (`GET /v1/audit`). A browser token (limited to a subject or ids)
         *     is refused.
         */
        post: operations["cancelCommands"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/counts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Count commands per status.
         * @description With the filters of `GET /v1/commands` (not its `status`, `limit` or `cursor`). Filtered by
         *     type only, or not at all, the counts are exact and cost a few rows whatever the table holds
         *     (counters kept as commands change). Any other filter counts among at most the 10,000 newest
         *     commands its indexed part selects (`exact: false` when more were left).
         */
        get: operations["countCommands"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/discard": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Discard parked failures in bulk.
         * @description Every parked failure of the caller's tenant that matches the selection (`ids`) and the
         *     filter becomes `discarded`. `dry_run` only counts, and answers `until`: the action sent with
         *     that `until` and the count as `limit` discards no more than the preview counted. Recorded in
         *     the audit trail (`GET /v1/audit`). A browser token (limited to a subject or ids) is refused.
         */
        post: operations["discardCommands"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Replay failed commands in bulk.
         * @description Every failed command that matches runs again as a new generation; `dry_run` only counts,
         *     and answers `until`: the action sent with that `until` and the count as `limit` replays no
         *     more than the preview counted, however many fail meanwhile. Recorded in the audit trail
         *     (`GET /v1/audit`). They count against the tenant's quota of unfinished commands: when they do not all fit,
         *     none is replayed (`429 quota_exceeded`).
         */
        post: operations["retryCommands"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * One command, with its payload.
         * @description `If-None-Match` naming the current version answers `304`; with `?wait=N` the answer waits up
         *     to N seconds for a change first (a long-poll).
         */
        get: operations["getCommand"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/{id}/attempts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The attempt history of a command.
         * @description Every run, oldest first: the worker that ran it, when, how it ended, and why. A run taken
         *     back from a worker that stopped renewing it ends `lease_lost`; when its worker process
         *     stopped heartbeating (killed, paused, cut off), its error is `worker_lost` and names it.
         */
        get: operations["listAttempts"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Cancel a command.
         * @description One that has not started (`new`, `queue`) is `cancelled` at once; a `running` one is asked to
         *     stop, and ends `cancelled` when its handler does.
         */
        post: operations["cancelCommand"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/{id}/discard": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Discard a parked failure.
         * @description A failed command parked in an exception lane becomes `discarded`: final, never replayed, and
         *     its parked message claims nothing when the lane consumes it. `409` for any other state.
         */
        post: operations["discardCommand"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/{id}/reschedule": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Re-time a scheduled command.
         * @description Only a command still `scheduled` can be re-timed: once the sweep released it (or it was
         *     cancelled) the answer is `409`.
         */
        post: operations["rescheduleCommand"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/commands/{id}/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Replay a failed or cancelled command.
         * @description It runs again as a new generation, with a fresh attempt budget; copies of its old messages
         *     claim nothing.
         */
        post: operations["retryCommand"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The change feed as Server-Sent Events.
         * @description `text/event-stream`, first `retry: 1000`; then `event: command` (`data:` the command view,
         *     `id:` the cursor when it moved) for each change (after a replay of what changed since
         *     `Last-Event-ID` or `since`), `event: subscribed` (`id:` and `data: {"cursor"}`) once the
         *     replay is sent, `event: reset` (`id:`, `data: {"cursor"}`: reload, go on from it), `event:
         *     renew` (`data: {"expires_at"}`) before a token expires (the stream ends at expiry), and a
         *     `: ping` comment every 15 s. A graceful stop ends the stream after the drain's changes.
         */
        get: operations["events"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The caller's tenant's keys, revoked ones included. */
        get: operations["listKeys"];
        put?: never;
        /** Make an API key of the caller's tenant. */
        post: operations["createKey"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/keys/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /**
         * Revoke a key of the caller's tenant.
         * @description At once: every process stops honouring it within the key cache's time, 500 ms by default.
         */
        delete: operations["revokeKey"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/queues": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Command queues and their depths.
         * @description Every queue of every registered type — main, ordered partitions, both exception lanes — and
         *     the shared retry tiers, each with its ready messages and consumers, read by passive declares
         *     (a queue not declared yet is left out). `unacked` is always `null`: AMQP does not report it,
         *     and the server does not use RabbitMQ's management API. Queues are shared by every tenant of
         *     the deployment: it needs `admin`.
         */
        get: operations["listQueues"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The caller's tenant's schedules. */
        get: operations["listSchedules"];
        put?: never;
        /**
         * Create a schedule.
         * @description From its next tick on, each tick of `cron` (read in `timezone`) submits one command of
         *     `type` with `payload`, exactly once however many api processes run (its idempotency key is
         *     `schedule:<id>:<tick>`). A tick a sweep finds more than 10 s past follows `missed`.
         *     Needs `operate`; recorded in the audit trail.
         */
        post: operations["createSchedule"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /**
         * Delete a schedule.
         * @description No tick is submitted after this answer; the commands it submitted stay. Needs `operate`;
         *     recorded in the audit trail.
         */
        delete: operations["deleteSchedule"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules/{id}/pause": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Pause a schedule.
         * @description No tick is submitted until it is resumed; pausing a paused schedule changes nothing. Needs
         *     `operate`; recorded in the audit trail.
         */
        post: operations["pauseSchedule"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/schedules/{id}/resume": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Resume a schedule.
         * @description It goes on from its next future tick: the ticks of the pause are not submitted (`409` when
         *     its pattern has no tick left, say a past year). Resuming a schedule that is not paused
         *     changes nothing. Needs `operate`; recorded in the audit trail.
         */
        post: operations["resumeSchedule"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Runs over time, per type.
         * @description How many runs ended in each outcome, per minute or per hour, and how long they took
         *     (percentiles). Read from a rollup the workers' finish batches append to, kept 8 days. API
         *     keys only: a browser token, limited to a subject or ids, is refused.
         */
        get: operations["getStats"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/tokens": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Mint a browser token.
         * @description An API key mints a short-lived token for one end user (`sub`) or for named commands (`ids`)
         *     of its tenant, with some of its own scopes; the application's backend hands it to the
         *     browser.
         */
        post: operations["mintToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/types": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Registered command types.
         * @description What `POST /v1/commands` accepts as `type`, with each type's defaults, an example payload,
         *     and the JSON Schemas of its payload (checked at submit) and result, where it declares them, and
         *     whether it is paused.
         */
        get: operations["listTypes"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/types/{name}/pause": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Pause a type.
         * @description Within about a second every worker process stops taking new deliveries of the type (its
         *     main queue, partitions and exception lanes); running commands finish, new ones wait in the
         *     queues (`GET /v1/queues`) and nothing is lost. The pause is stored, so it survives restarts
         *     of every process, until `POST /v1/types/{name}/resume`. Pausing a paused type changes
         *     nothing. Types are shared by every tenant: it needs `admin`. Recorded in the audit trail.
         */
        post: operations["pauseType"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/types/{name}/resume": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Resume a type.
         * @description Within about a second workers consume the type's queues again. Resuming a type that is not
         *     paused changes nothing. It needs `admin`; recorded in the audit trail.
         */
        post: operations["resumeType"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/whoami": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** What the credential is and may do. */
        get: operations["whoami"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/workers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Live worker processes.
         * @description Every worker process whose heartbeat row is fresh (seen within its own `dead_after_ms`),
         *     with what it runs now. Infrastructure only — hosts, process ids, counts — shared by every
         *     tenant of the deployment, never a command or a payload; it needs `admin`.
         */
        get: operations["listWorkers"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/ws": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The WebSocket of state changes.
         * @description Send `{"op":"subscribe","ids":[...]}` or `{"op":"subscribe","all":true}`, optionally with
         *     `"since":"<cursor>"` (a cursor this server sent), and `{"op":"unsubscribe",...}` likewise.
         *     With `since`, the latest state of every matching command changed after the cursor is replayed
         *     first; then `{"op":"subscribed","cursor":"..."}`, then
         *     `{"op":"command","command":<CommandView>,"cursor":"..."}` per change (`cursor` only when it
         *     moved). Keep the last cursor received and resume with it. `{"op":"reset","cursor":"..."}`:
         *     reload, then go on from the cursor. `{"op":"error","code":...,"message":...}` answers a bad
         *     request (`bad_request`, `bad_cursor`, `too_many_ids`, `unavailable`); the socket stays open.
         *
         *     A client that can set headers authenticates with `Authorization: Bearer` on the upgrade
         *     (refused with `401` before it); a browser, which cannot, upgrades without it and sends
         *     `{"op":"auth","token":"..."}` first.
         */
        get: operations["websocket"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description A command's runs. */
        AttemptList: {
            /** @description Oldest first. */
            items: components["schemas"]["AttemptView"][];
        };
        /** @description One run of a command: `GET /v1/commands/{id}/attempts` lists them, oldest first. */
        AttemptView: {
            /**
             * Format: int32
             * @description The attempt number, from 1.
             */
            attempt: number;
            error: null | components["schemas"]["ErrorInfo"];
            /**
             * Format: date-time
             * @description When it ended, or was taken back; `null` while it runs.
             */
            finished_at: string | null;
            /**
             * Format: int32
             * @description The command's generation the run belonged to (bumped by each replay).
             */
            generation: number;
            /**
             * @description How it ended: `success`, `fail`, `retry`, `cancelled`, `released` (given back at
             *     shutdown) or `lease_lost` (reclaimed: its worker stopped renewing it); `null` while it
             *     runs.
             */
            outcome: string | null;
            /**
             * Format: date-time
             * @description When it started.
             */
            started_at: string;
            /** @description The worker process that ran it (`<host>-<pid>-<random>`). */
            worker: string;
        };
        /** @description One action of the trail. */
        AuditEntryView: {
            /** @description What was done. */
            action: string;
            /** @description Who did it: `key:<id>`, `token:<subject>` or `open`. */
            actor: string;
            /**
             * Format: date-time
             * @description When it was done.
             */
            at: string;
            /**
             * Format: int64
             * @description How many commands it changed (for a pause or resume, 1 if the type's state changed; 1
             *     for a schedule's change).
             */
            count: number;
            /**
             * @description The selection or filter it was given (for a pause or resume, the type; for a schedule's
             *     change, the schedule's id, name and type).
             */
            filter: Record<string, never>;
            /**
             * Format: int64
             * @description Its place in the trail: higher is newer.
             */
            id: number;
        };
        /** @description A page of the trail. */
        AuditPage: {
            /** @description Newest first. */
            items: components["schemas"]["AuditEntryView"][];
            /**
             * Format: int64
             * @description `before` of the next page; `null` on the last.
             */
            next: number | null;
        };
        /** @description One command of a batch: a submit's body, with its idempotency key inside. */
        BatchItem: {
            /**
             * Format: double
             * @description Seconds from now to run it (at most a year); not with `run_at`.
             */
            delay?: number | null;
            /** @description What the `Idempotency-Key` header is to a single submit: a repeat (in this batch or any later request) answers `200` with the command recorded first. */
            idempotency_key?: string | null;
            /**
             * Format: int32
             * @description Attempts allowed before the command fails for good; the type's default when absent.
             */
            max_attempts?: number | null;
            /** @description Commands of one tenant sharing a key run one at a time, in submission order. */
            ordering_key?: string | null;
            /** @description The handler's input; `null` when absent. */
            payload?: components["schemas"]["Payload"];
            /**
             * Format: int32
             * @description 0 (lowest, the default) to 9 (highest).
             */
            priority?: number | null;
            /**
             * Format: date-time
             * @description When to run it (RFC 3339); not with `delay`.
             */
            run_at?: string | null;
            /** @description The end user it belongs to: a browser token for this subject sees it. A token that submits always submits for its own subject. */
            subject?: string | null;
            /** @description A registered command type (`GET /v1/types`). */
            type: string;
        };
        /** @description `POST /v1/commands/batch` body. */
        BatchRequest: {
            /**
             * @description The commands, at most 1,000; each is read on its own, so one that cannot be read is
             *     refused in its result and the others go on.
             */
            commands: components["schemas"]["BatchItem"][];
        };
        /** @description What became of one command of a batch. */
        BatchResult: {
            command?: null | components["schemas"]["CommandView"];
            error?: null | components["schemas"]["Problem"];
            /**
             * Format: int32
             * @description What a single submit would have answered: `202` recorded, `200` recorded before under
             *     this idempotency key, or the 4xx (5xx) of its problem.
             */
            status: number;
        };
        /** @description The answer: one result per command, in the order sent. */
        BatchResults: {
            /** @description One per command of the request, in its order. */
            results: components["schemas"]["BatchResult"][];
        };
        /**
         * @description The size of a bucket of time.
         * @enum {string}
         */
        Bucket: "minute" | "hour";
        /** @description How many matched, and how many were cancelled. */
        CancelCount: {
            /**
             * Format: int64
             * @description Cancelled now, or asked to stop if running (0 on a dry run); at most `matched` and
             *     `limit`, fewer when some finished meanwhile.
             */
            cancelled: number;
            /**
             * Format: int64
             * @description Unfinished commands that match (created before `until`).
             */
            matched: number;
            /**
             * Format: date-time
             * @description The bound counted with (the request's `until`, or the database's time of the count): send
             *     it with the action.
             */
            until: string;
        };
        /** @description `POST /v1/commands/cancel` body: which unfinished commands to cancel. */
        CancelMatching: {
            /**
             * @description Count, change nothing.
             * @default false
             */
            dry_run: boolean;
            /** @description Only commands whose last error (waiting for a retry) has this code. */
            error_code?: string | null;
            /** @description Only these commands (at most 1,000); empty or absent: every command the filter matches. */
            ids?: string[];
            /**
             * Format: int64
             * @description Cancel at most this many: send the dry run's `matched`, so that the action never takes
             *     more than the preview counted.
             */
            limit?: number | null;
            /**
             * Format: date-time
             * @description Only commands created at or after this time.
             */
            since?: string | null;
            status?: null | components["schemas"]["Cancellable"];
            /** @description Only this type. */
            type?: string | null;
            /**
             * Format: date-time
             * @description Only commands created before this time. A dry run answers the bound it counted with:
             *     send it back with the action.
             */
            until?: string | null;
        };
        /**
         * @description The states a bulk cancel takes.
         * @enum {string}
         */
        Cancellable: "scheduled" | "new" | "queue" | "running";
        /** @description One answer of the change feed. */
        ChangesPage: {
            /** @description The latest view of each command changed since `since`, oldest change first. */
            changes: components["schemas"]["CommandView"][];
            /** @description Pass as `since` next time: every change it covers has been answered. */
            cursor: string;
            /** @description More changes are waiting: ask again at once with `cursor`. */
            more: boolean;
        };
        /**
         * @description The view plus the payload: what `GET /v1/commands/{id}` shows (lists and pushes leave the
         *     payload out to stay small).
         */
        CommandDetail: components["schemas"]["CommandView"] & {
            /** @description The handler's input, as recorded. */
            payload: unknown;
        };
        /** @description A command as clients see it: the REST body, the WebSocket payload and the event on the bus. */
        CommandView: {
            /**
             * Format: int32
             * @description Attempts started so far (0 before the first claim).
             */
            attempt: number;
            /**
             * Format: date-time
             * @description When the api recorded it.
             */
            created_at: string;
            error: null | components["schemas"]["ErrorInfo"];
            /**
             * Format: date-time
             * @description When it reached a terminal state.
             */
            finished_at: string | null;
            /**
             * Format: uuid
             * @description UUID v7, so ids sort by creation time.
             */
            id: string;
            /**
             * Format: int32
             * @description Attempts allowed before the command fails for good.
             */
            max_attempts: number;
            /**
             * Format: date-time
             * @description While waiting to be retried: when the next attempt is due.
             */
            next_attempt_at: string | null;
            /** @description Commands sharing a key run one at a time, in submission order. */
            ordering_key: string | null;
            /**
             * Format: int32
             * @description 0 (lowest) to 9 (highest).
             */
            priority: number;
            /**
             * Format: float
             * @description Fraction done, 0.0 to 1.0, as last reported by the handler.
             */
            progress: number | null;
            /** @description Free text the handler attached to its last progress report. */
            progress_note: string | null;
            /**
             * Format: date-time
             * @description When the broker first confirmed its message.
             */
            queued_at: string | null;
            /**
             * Format: date-time
             * @description When a run was last taken back from a worker that stopped renewing its lease (the process
             *     died, paused or lost the database): the run was reclaimed and the command went on
             *     without it. The attempt history says which worker and why.
             */
            reclaimed_at: string | null;
            /**
             * @description The handler's result, once `success`: raw JSON, carried as stored and never re-parsed, so
             *     that any result PostgreSQL accepted reaches every client (however deep or large its
             *     numbers).
             */
            result: unknown;
            /**
             * Format: date-time
             * @description When it was asked to run (a delayed command): `scheduled` until then, released to the
             *     queue by the api's sweep once due. `null` for a command submitted to run at once.
             */
            run_at: string | null;
            /**
             * Format: date-time
             * @description When the current attempt started.
             */
            started_at: string | null;
            /** @description Lifecycle state. */
            status: components["schemas"]["Status"];
            /**
             * @description The end user the command belongs to, as the submitter named it: a browser token for
             *     that subject sees it.
             */
            subject: string | null;
            /** @description The registered command type, e.g. `demo.sleep`. */
            type: string;
            /**
             * Format: int64
             * @description Global, strictly increasing change counter: keep a change only if its version is higher.
             */
            version: number;
        };
        /** @description Counts per status. */
        Counts: {
            /** @description Matching commands in each status (every status is present, 0 where none). */
            counts: {
                /** Format: int64 */
                cancelled: number;
                /** Format: int64 */
                discarded: number;
                /** Format: int64 */
                fail: number;
                /** Format: int64 */
                new: number;
                /** Format: int64 */
                queue: number;
                /** Format: int64 */
                running: number;
                /** Format: int64 */
                scheduled: number;
                /** Format: int64 */
                success: number;
            };
            /**
             * @description True when every count is exact; false when the filter looked through its bound of
             *     10,000 commands and more were left: each count is then a lower bound.
             */
            exact: boolean;
        };
        /** @description A new key: the only time its secret is shown. */
        CreatedKey: components["schemas"]["KeyView"] & {
            /** @description The key, for `Authorization: Bearer`. Not stored: keep it now. */
            key: string;
        };
        /** @description How many matched, and how many were discarded. */
        DiscardCount: {
            /**
             * Format: int64
             * @description Discarded now (0 on a dry run); at most `matched` and `limit`, fewer when some were
             *     replayed or re-run meanwhile.
             */
            discarded: number;
            /**
             * Format: int64
             * @description Parked failures that match (finished before `until`).
             */
            matched: number;
            /**
             * Format: date-time
             * @description The bound counted with (the request's `until`, or the database's time of the count): send
             *     it with the action.
             */
            until: string;
        };
        /** @description `POST /v1/commands/discard` body: which parked failures to discard. */
        DiscardMatching: {
            /**
             * @description Count, change nothing.
             * @default false
             */
            dry_run: boolean;
            /** @description Only failures with this error code. */
            error_code?: string | null;
            /**
             * @description Only these commands (at most 1,000); empty or absent: every parked failure the filter
             *     matches.
             */
            ids?: string[];
            lane?: null | components["schemas"]["ParkedLane"];
            /**
             * Format: int64
             * @description Discard at most this many: send the dry run's `matched`, so that the action never takes
             *     more than the preview counted.
             */
            limit?: number | null;
            /**
             * Format: date-time
             * @description Only failures finished at or after this time.
             */
            since?: string | null;
            /** @description Only this type. */
            type?: string | null;
            /**
             * Format: date-time
             * @description Only failures finished before this time. A dry run answers the bound it counted with:
             *     send it back with the action.
             */
            until?: string | null;
        };
        /** @description Why a command failed, as stored in `commands.error` and shown to clients. */
        ErrorInfo: {
            /** @description Stable, machine-readable snake_case code (`handler_error`, `panicked`, `lease_lost`, ...). */
            code: string;
            /** @description Human-readable explanation. */
            message: string;
            /** @description Whether another attempt could succeed. */
            retryable: boolean;
        };
        /** @description One part of a request body that cannot be accepted, and why. */
        FieldError: {
            /**
             * @description JSON Pointer (RFC 6901) into the request body: `/payload/amount`, or `/payload` for the
             *     payload as a whole.
             */
            pointer: string;
            /** @description What is wrong there. */
            reason: string;
        };
        /**
         * @description Percentiles of how long runs took, in milliseconds, read off a fixed histogram (within a
         *     bucket, by linear interpolation).
         */
        HandlerMs: {
            /**
             * Format: double
             * @description The median.
             */
            p50: number;
            /**
             * Format: double
             * @description 95% took at most this long.
             */
            p95: number;
            /**
             * Format: double
             * @description 99% took at most this long.
             */
            p99: number;
        };
        /** @description A list of keys. */
        KeyList: {
            /** @description The tenant's keys, revoked ones included. */
            items: components["schemas"]["KeyView"][];
        };
        /** @description A key as listed (never its secret). */
        KeyView: {
            /**
             * Format: date-time
             * @description Created.
             */
            created_at: string;
            /** @description Made by a development start. */
            development: boolean;
            /**
             * Format: uuid
             * @description Its id (what `DELETE /v1/keys/{id}` takes).
             */
            id: string;
            /** @description What it is for. */
            name: string;
            /** @description Its first characters. */
            prefix: string;
            /**
             * Format: date-time
             * @description Revoked, if it is.
             */
            revoked_at: string | null;
            /** @description What it may do. */
            scopes: ("submit" | "read" | "operate" | "admin")[];
            /** @description Owner. */
            tenant: string;
        };
        /** @description A minted token. */
        Minted: {
            /**
             * Format: int64
             * @description Expiry, Unix seconds.
             */
            expires_at: number;
            /** @description The token, for `Authorization: Bearer` or the WebSocket's `auth` message. */
            token: string;
        };
        /** @description `POST /v1/keys` body. */
        NewKeyRequest: {
            /** @description What the key is for. */
            name: string;
            /** @description What it may do: any of `submit`, `read`, `operate`, `admin`. */
            scopes: ("submit" | "read" | "operate" | "admin")[];
        };
        /** @description A page of commands. */
        Page: {
            /** @description Newest first. */
            items: components["schemas"]["CommandView"][];
            /**
             * Format: uuid
             * @description Pass as `cursor` for the next (older) page; `null` on the last page. A filter without an
             *     index of its own (a status other than `fail`, a type, `q`, keys, an error code) looks
             *     through at most 2,000 commands per page, so its page can be short (or empty) and still
             *     have a next one.
             */
            next_cursor: string | null;
            /**
             * @description The resume point of this read: a WebSocket subscription with `since` set to it misses no
             *     change made after the page was read.
             */
            since: string;
        };
        /**
         * @description An exception lane, where failures are parked.
         * @enum {string}
         */
        ParkedLane: "exceptions1" | "exceptions2";
        /** @description A type's pause state. */
        PauseState: {
            /** @description The type. */
            name: string;
            /** @description Workers take no new deliveries of it. */
            paused: boolean;
            /**
             * Format: date-time
             * @description Since when it is paused; `null` when it is not.
             */
            paused_at: string | null;
        };
        /** @description Any JSON, with no NUL character in a string or a key and no number beyond ±1e308: what PostgreSQL stores and a handler reads back exactly. */
        Payload: unknown;
        /** @description What went wrong, for people (`title`, `detail`) and for programs (`status`, `code`). */
        Problem: {
            /**
             * @description Stable, machine-readable snake_case code: `malformed_json`, `invalid_body`,
             *     `unsupported_media_type`, `unsupported_content_encoding`, `payload_too_large`,
             *     `unknown_type`, `invalid_field`, `invalid_payload`,
             *     `idempotency_key_reused`, `invalid_id`, `invalid_query`, `not_found`, `conflict`,
             *     `not_websocket`, `upgrade_required`, `unavailable`, `internal`, `unauthorized`,
             *     `forbidden`, `rate_limited`, `quota_exceeded`, `subject_quota_exceeded`,
             *     `too_many_failed_authentications`, `too_many_connections`, `host_not_allowed`,
             *     `origin_not_allowed`, `request_timeout`, `bad_cursor`, `reset` (with a `cursor` member:
             *     reload, then go on from it), `key_in_query`, `bad_request`.
             */
            code: string;
            /** @description What exactly was wrong with this request. */
            detail: string;
            /** @description With `invalid_payload`: each part of the body its type's JSON Schema refuses. */
            errors?: components["schemas"]["FieldError"][];
            /**
             * @description On 5xx answers: the request's `X-Request-Id`, which the server's log lines of the failure
             *     carry (the body itself says nothing about the server's insides).
             */
            request_id?: string | null;
            /**
             * Format: int32
             * @description The HTTP status code.
             */
            status: number;
            /** @description The HTTP status's reason phrase. */
            title: string;
            /** @description Always `about:blank`: `code` says which problem it is. */
            type: string;
        };
        /** @description The queues. */
        QueueList: {
            /** @description By type (main, partitions, exception lanes), then the retry tiers, shortest first. */
            items: components["schemas"]["QueueView"][];
        };
        /**
         * @description What a queue holds.
         * @enum {string}
         */
        QueueRole: "main" | "partition" | "exceptions1" | "exceptions2" | "retry";
        /** @description One queue. */
        QueueView: {
            /**
             * Format: int32
             * @description Consumers attached (worker processes consuming it).
             */
            consumers: number;
            /** @description The queue's name on the broker. */
            name: string;
            /**
             * Format: int32
             * @description Messages ready for delivery.
             */
            ready: number;
            /** @description What it holds. */
            role: components["schemas"]["QueueRole"];
            /** @description The command type it carries; `null` for a retry tier (shared by every type). */
            type: string | null;
            /**
             * Format: int32
             * @description Messages delivered and not yet acknowledged: always `null` here, because AMQP's passive
             *     declare does not count them (the management API does, and is not used).
             */
            unacked: number | null;
        };
        /** @description Which dependencies this process reaches. */
        Readiness: {
            /** @description A broker session is up. */
            broker: boolean;
            /** @description PostgreSQL answered within 2 s. */
            database: boolean;
            /**
             * @description A graceful stop is under way: running handlers finish and clients still get their
             *     changes, but new clients belong elsewhere.
             */
            draining: boolean;
        };
        /** @description `POST /v1/commands/{id}/reschedule` body: when the command is to run now. */
        Reschedule: {
            /**
             * Format: date-time
             * @description The new time to run it (RFC 3339); one already past makes it due at the sweep's next
             *     pass.
             */
            run_at: string;
        };
        /** @description The problem a change feed's reset answers: a `Problem` and the cursor to go on from. */
        ResetProblem: components["schemas"]["Problem"] & {
            /** @description Reload what you show, then go on from this cursor. */
            cursor: string;
        };
        /** @description How many matched, and how many were replayed. */
        RetryCount: {
            /**
             * Format: int64
             * @description Failed commands that match.
             */
            matched: number;
            /**
             * Format: int64
             * @description Replayed now (0 on a dry run); at most `matched` and `limit`, fewer when some changed
             *     meanwhile.
             */
            retried: number;
            /**
             * Format: date-time
             * @description The bound counted with (the request's `until`, or the database's time of the count):
             *     send it with the action.
             */
            until: string;
        };
        /** @description `POST /v1/commands/retry` body: which failed commands to replay. */
        RetryMatching: {
            /**
             * @description Count, change nothing.
             * @default false
             */
            dry_run: boolean;
            /** @description Only failures with this error code. */
            error_code?: string | null;
            /**
             * Format: int64
             * @description Replay at most this many: send the dry run's `matched`, so that the action never takes
             *     more than the preview counted.
             */
            limit?: number | null;
            /**
             * Format: date-time
             * @description Only failures finished at or after this time.
             */
            since?: string | null;
            /** @description Only this type. */
            type?: string | null;
            /**
             * Format: date-time
             * @description Only failures finished before this time. A dry run answers the bound it counted with:
             *     send it back with the action.
             */
            until?: string | null;
        };
        /** @description A tenant's schedules. */
        ScheduleList: {
            /** @description Oldest first (at most 1,000). */
            items: components["schemas"]["ScheduleView"][];
        };
        /** @description `POST /v1/schedules` body. */
        ScheduleRequest: {
            /**
             * @description A cron pattern: 5 fields (`minute hour day-of-month month day-of-week`), or 6 with
             *     seconds first.
             * @example *\/5 * * * *
             */
            cron: string;
            /**
             * @description Ticks a sweep finds more than 10 s past (after an outage): `skip` them (the default), or
             *     submit one command for all of them (`catch_up_once`).
             */
            missed?: string | null;
            /** @description A name for it, unique in the tenant (a startup file declares schedules by name). */
            name?: string | null;
            /** @description The payload each tick submits, checked against the type's schema now. */
            payload?: components["schemas"]["Payload"];
            /**
             * @description The IANA time zone the pattern is read in; `UTC` when absent.
             * @example Europe/Paris
             */
            timezone?: string | null;
            /** @description A registered command type (`GET /v1/types`), submitted at each tick. */
            type: string;
        };
        /** @description A schedule. */
        ScheduleView: {
            /**
             * Format: date-time
             * @description When it was recorded.
             */
            created_at: string;
            /** @description The cron pattern. */
            cron: string;
            /** @description Declared by the startup file (`CMDBUS_SCHEDULES`). */
            declared: boolean;
            /**
             * Format: uuid
             * @description Its id.
             */
            id: string;
            /**
             * Format: uuid
             * @description The command submitted for it.
             */
            last_command: string | null;
            /**
             * Format: date-time
             * @description The last tick a command was submitted for.
             */
            last_tick_at: string | null;
            /** @description What a sweep does with ticks long past: `skip` or `catch_up_once`. */
            missed: string;
            /** @description Its name, unique in the tenant. */
            name: string | null;
            /**
             * Format: date-time
             * @description The next tick (while paused: the one it had; a resume starts from the next future one).
             */
            next_run_at: string;
            /** @description No ticks are submitted while paused. */
            paused: boolean;
            /**
             * Format: date-time
             * @description Since when it is paused.
             */
            paused_at: string | null;
            /** @description The payload each tick submits. */
            payload: components["schemas"]["Payload"];
            /** @description The IANA time zone it is read in. */
            timezone: string;
            /** @description The command type each tick submits. */
            type: string;
        };
        /**
         * @description Query of `GET /v1/events`.
         *     One event of the stream, as a Server-Sent Events parser hands it over.
         */
        SseEvent: {
            /**
             * @description One line of JSON: the command view for `command`, `{"cursor"}` for `subscribed` and
             *     `reset`, `{"expires_at"}` for `renew`, a problem for `error`.
             */
            data: string;
            /** @description `subscribed`, `command`, `reset`, `renew` or `error`. */
            event?: string | null;
            /** @description The resume cursor, when it moved: what `Last-Event-ID` sends back on a reconnect. */
            id?: string | null;
            /**
             * Format: int64
             * @description Milliseconds a client waits before it reconnects (the stream's first line).
             */
            retry?: number | null;
        };
        /** @description Runs over time. */
        Stats: {
            /** @description The size of each bucket. */
            bucket: components["schemas"]["Bucket"];
            /** @description Oldest first, then by type; a bucket without runs is absent. */
            series: components["schemas"]["StatsPoint"][];
        };
        /** @description The runs of one type in one bucket of time. */
        StatsPoint: {
            /**
             * Format: date-time
             * @description The start of the bucket.
             */
            at: string;
            /**
             * Format: int64
             * @description Runs stopped by a cancel.
             */
            cancelled: number;
            /**
             * Format: int64
             * @description Runs that failed for good.
             */
            fail: number;
            handler_ms: null | components["schemas"]["HandlerMs"];
            /**
             * Format: int64
             * @description Runs taken back from a worker that stopped renewing its lease.
             */
            lease_lost: number;
            /**
             * Format: int64
             * @description Runs that failed and will be tried again.
             */
            retry: number;
            /**
             * Format: int64
             * @description Runs that succeeded.
             */
            success: number;
            /** @description The command type. */
            type: string;
        };
        /**
         * @description Where a command is in its life. The strings are the same in the database and on the wire.
         *
         *     Each variant says who sets it and who moves it on; every move is one conditional statement
         *     of the store (`cmdbus-store`), so two processes can never both move the same state on.
         * @enum {string}
         */
        Status: "scheduled" | "new" | "queue" | "running" | "success" | "fail" | "cancelled" | "discarded";
        /** @description `POST /v1/commands` body. */
        SubmitRequest: {
            /**
             * Format: double
             * @description Seconds from now to run it (fractions allowed, at most a year): the same as a `run_at`
             *     of now plus this. Not with `run_at`.
             */
            delay?: number | null;
            /**
             * Format: int32
             * @description Attempts allowed before the command fails for good; the type's default when absent.
             */
            max_attempts?: number | null;
            /** @description Commands of one tenant sharing a key run one at a time, in submission order. */
            ordering_key?: string | null;
            /** @description The handler's input; `null` when absent. */
            payload?: components["schemas"]["Payload"];
            /**
             * Format: int32
             * @description 0 (lowest, the default) to 9 (highest).
             */
            priority?: number | null;
            /**
             * Format: date-time
             * @description When to run it (RFC 3339, compared with the database's clock): a time to come records
             *     the command `scheduled`, and it waits in PostgreSQL until then; one already past runs at
             *     once. Not with `delay`.
             */
            run_at?: string | null;
            /** @description The end user it belongs to: a browser token for this subject sees it. A token that submits always submits for its own subject. */
            subject?: string | null;
            /** @description A registered command type (`GET /v1/types`). */
            type: string;
        };
        /** @description `POST /v1/tokens` body: `sub`, or `ids`, or both. */
        TokenRequest: {
            /** @description Or only these commands (at most 1,000). */
            ids?: string[];
            /** @description Scopes granted (default `read`; the minting key must hold each). */
            scopes?: ("read" | "submit" | "operate")[] | null;
            /** @description The end user: the token sees the commands submitted for this subject. */
            sub?: string | null;
            /**
             * Format: int64
             * @description Lifetime in seconds (default 600, at most the server's token maximum).
             */
            ttl_secs?: number | null;
        };
        /** @description A registered type, and whether an operator paused it. */
        TypeEntry: components["schemas"]["TypeInfo"] & {
            /** @description Paused by an operator (`POST /v1/types/{name}/pause`): workers take no new deliveries. */
            paused: boolean;
        };
        /** @description A registered command type, as `GET /v1/types` lists it. */
        TypeInfo: {
            /** @description What the handler does. */
            description: string;
            /** @description A payload that works, for forms and documentation. */
            example: unknown;
            /**
             * Format: int32
             * @description Attempts a command of this type gets unless the submitter asks otherwise.
             */
            max_attempts: number;
            /** @description The type's name, also the routing key of its messages. */
            name: string;
            /**
             * @description JSON Schema (2020-12) of the payload, where the handler declares one (a typed
             *     handler's is derived from its payload type): a submit whose payload it refuses is
             *     answered `422 invalid_payload`. `null`: any payload is accepted.
             */
            payload_schema: unknown;
            /** @description JSON Schema (2020-12) of a successful command's `result`, where the handler declares one. */
            result_schema: unknown;
        };
        /** @description The catalogue. */
        TypeList: {
            /** @description Every registered type, by name. */
            items: components["schemas"]["TypeEntry"][];
        };
        /** @description `GET /v1/whoami` answer: what the credential is and may do. */
        WhoAmI: {
            /**
             * Format: int64
             * @description A token's expiry (Unix seconds).
             */
            expires_at?: number | null;
            /** @description A token's command ids. */
            ids?: string[] | null;
            /**
             * Format: uuid
             * @description The key's id (or the key that minted the token).
             */
            key_id?: string | null;
            /** @description `key`, `token`, or `open` when the server runs without authentication. */
            kind: string;
            /** @description Its scopes. */
            scopes: ("submit" | "read" | "operate" | "admin")[];
            /** @description A token's subject. */
            subject?: string | null;
            /** @description The tenant whose commands it reaches. */
            tenant: string;
        };
        /** @description The live workers. */
        WorkerList: {
            /** @description Oldest first. */
            items: components["schemas"]["WorkerView"][];
        };
        /** @description A live worker process, from its heartbeat row: `GET /v1/workers`. */
        WorkerView: {
            /**
             * Format: int32
             * @description Handlers it runs at once.
             */
            concurrency: number;
            /**
             * Format: int32
             * @description Silence, in milliseconds, after which its runs are released to other workers.
             */
            dead_after_ms: number;
            /** @description The machine it runs on. */
            host: string;
            /** @description The name on every lease it holds (`<host>-<pid>-<random>`). */
            id: string;
            /** @description The exception lane it serves (`exceptions1`, `exceptions2`); `null` for the main queues. */
            lane: string | null;
            /**
             * Format: date-time
             * @description Its last heartbeat (written about every second).
             */
            last_seen_at: string;
            /**
             * Format: int32
             * @description Its process id.
             */
            pid: number;
            /**
             * Format: int64
             * @description Commands it runs now.
             */
            running: number;
            /**
             * Format: date-time
             * @description When it started.
             */
            started_at: string;
            /** @description It is draining: it takes no new work and leaves once its runs are done. */
            stopping: boolean;
            /** @description The cmdbus version it runs. */
            version: string;
        };
    };
    responses: {
        /**
         * @description The request cannot be read: `malformed_json` (the body is not JSON), `invalid_id` (the path's
         *     id is not a UUID), `invalid_query` (a query parameter is wrong), `bad_cursor` (a `since` that
         *     is not a cursor this server sent), `invalid_cron` (a schedule's cron pattern cannot be read or
         *     never fires), `invalid_timezone` (a schedule's time zone is not an IANA zone name), or
         *     `host_not_allowed` (this server does not answer for that host name).
         */
        BadRequest: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /**
         * @description `conflict`: the command's state does not allow it; for a schedule, the tenant has one of that
         *     name already, or (resume) its pattern has no tick left.
         */
        Conflict: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /**
         * @description `forbidden`: the credentials lack the scope this operation needs (or are a browser token
         *     where only a key will do); `origin_not_allowed`: pages of that origin may not call this
         *     server.
         */
        Forbidden: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /**
         * @description `not_found`: no such command (another tenant's ids are not found either), or no such
         *     registered type (pause, resume), or no such schedule.
         */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /** @description `payload_too_large`: the body is over the server's limit (256 KiB by default). */
        PayloadTooLarge: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /**
         * @description `rate_limited`: too many requests (or long-polls) with these credentials; `quota_exceeded`:
         *     the tenant has as many unfinished commands as it may (for a browser token: as many as tokens
         *     may, the rest is kept for API keys); `subject_quota_exceeded`: this token's subject has its
         *     share of them; `too_many_failed_authentications`: this address failed to authenticate too
         *     often. Try again later.
         */
        RateLimited: {
            headers: {
                /** @description Seconds to wait before trying again. */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /**
         * @description `reset`: more changed since the cursor than the change feed replays (5,000): reload what you
         *     show, then go on from the problem's `cursor`.
         */
        ResetGone: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["ResetProblem"];
            };
        };
        /**
         * @description `reset`: the cursor is ahead of this status database (from another deployment, or a database
         *     restored from a backup): reload what you show, then go on from the problem's `cursor`.
         */
        ResetNotServed: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["ResetProblem"];
            };
        };
        /** @description `unauthorized`: no valid `Authorization: Bearer` credentials. */
        Unauthorized: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /**
         * @description `unavailable`: the status database cannot be reached (to run the request, or to check its
         *     credentials); try again.
         */
        Unavailable: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /**
         * @description The body is JSON that cannot be accepted: `invalid_body` (of the wrong shape), `invalid_field`
         *     (a field out of range, or a value that cannot be stored), `unknown_type` (no such command
         *     type is registered), `invalid_payload` (the payload does not follow its type's JSON Schema,
         *     `GET /v1/types`: `errors` lists each refusal as `{"pointer": "/payload/amount", "reason":
         *     "…"}`, the pointer an RFC 6901 JSON Pointer into the request body),
         *     `idempotency_key_reused` (the `Idempotency-Key` names another command, as in the IETF
         *     Idempotency-Key draft).
         */
        UnprocessableEntity: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
        /**
         * @description `unsupported_media_type`: the body is not sent as `Content-Type: application/json`; or
         *     `unsupported_content_encoding`: it is sent with a `Content-Encoding` other than `identity`.
         */
        UnsupportedMediaType: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/problem+json": components["schemas"]["Problem"];
            };
        };
    };
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    healthz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Alive. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
        };
    };
    metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The Prometheus text format (0.0.4). */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
            /** @description `host_not_allowed`: this server does not answer for that host name. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `unauthorized`: no metrics token, or not the one set (`CMDBUS_METRICS_TOKEN`); off loopback with no token set, always. */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `origin_not_allowed`: pages of that origin may not call this server. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The application that embeds cmdbus records the metrics itself. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
        };
    };
    openapi: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OpenAPI 3.1. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description `host_not_allowed`: this server does not answer for that host name. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `origin_not_allowed`: pages of that origin may not call this server. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    readyz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Readiness"];
                };
            };
            /** @description Not ready: the body says which dependency is missing, or that the process is draining for a graceful stop. */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Readiness"];
                };
            };
        };
    };
    listAudit: {
        parameters: {
            query?: {
                /** @description Only rows older than this one (the previous page's `next`). */
                before?: number;
                /** @description Rows per page. */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of the trail. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AuditPage"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    listChanges: {
        parameters: {
            query?: {
                /**
                 * @description The `cursor` of your last answer (or of a `GET /v1/commands` page, a WebSocket or SSE
                 *     message). Without it the answer is at once a starting point: no changes and the cursor
                 *     of now.
                 */
                since?: string;
                /** @description Seconds to wait for a change when there is none yet. */
                wait?: number;
                /** @description Only these commands: comma-separated ids, at most 1,000. */
                ids?: string;
                /**
                 * @description Most commands per answer (a transaction's changes are never split, so a single larger
                 *     transaction is answered whole).
                 */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The changes, and the cursor to go on from. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ChangesPage"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            409: components["responses"]["ResetNotServed"];
            410: components["responses"]["ResetGone"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    listCommands: {
        parameters: {
            query?: {
                /** @description Only commands in this status. */
                status?: components["schemas"]["Status"];
                /** @description Commands per page. */
                limit?: number;
                /** @description The `next_cursor` of the previous page. */
                cursor?: string;
                type?: string;
                subject?: string;
                q?: string;
                ordering_key?: string;
                idempotency_key?: string;
                error_code?: string;
                /** @description Only failures parked in this exception lane. */
                lane?: "exceptions1" | "exceptions2";
                /** @description Only commands created at or after this time (RFC 3339). */
                created_after?: string;
                /** @description Only commands created before this time (RFC 3339). */
                created_before?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of commands. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Page"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    submitCommand: {
        parameters: {
            query?: never;
            header?: {
                "Idempotency-Key"?: string;
                traceparent?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SubmitRequest"];
            };
        };
        responses: {
            /** @description Recorded before under this `Idempotency-Key`. */
            200: {
                headers: {
                    /** @description The command's version, quoted. */
                    ETag?: string;
                    /** @description The command's URL. */
                    Location?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandView"];
                };
            };
            /** @description Recorded. */
            202: {
                headers: {
                    /** @description The command's version, quoted. */
                    ETag?: string;
                    /** @description The command's URL. */
                    Location?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandView"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    submitCommands: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["BatchRequest"];
            };
        };
        responses: {
            /** @description A result per command, in order. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["BatchResults"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    cancelCommands: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CancelMatching"];
            };
        };
        responses: {
            /** @description How many matched and were cancelled. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CancelCount"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    countCommands: {
        parameters: {
            query?: {
                type?: string;
                subject?: string;
                q?: string;
                ordering_key?: string;
                idempotency_key?: string;
                error_code?: string;
                /** @description Only failures parked in this exception lane. */
                lane?: "exceptions1" | "exceptions2";
                /** @description Only commands created at or after this time (RFC 3339). */
                created_after?: string;
                /** @description Only commands created before this time (RFC 3339). */
                created_before?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Counts per status. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Counts"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    discardCommands: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DiscardMatching"];
            };
        };
        responses: {
            /** @description How many matched and were discarded. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DiscardCount"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    retryCommands: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["RetryMatching"];
            };
        };
        responses: {
            /** @description How many matched and were replayed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RetryCount"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    getCommand: {
        parameters: {
            query?: {
                /** @description With `If-None-Match`: seconds to wait for the command to change before answering `304`. */
                wait?: number;
            };
            header?: {
                /**
                 * @description The `ETag`s you hold: `304` while one names the current version; `*` answers `304` at
                 *     once whenever the command exists (no long-poll).
                 */
                "If-None-Match"?: string;
            };
            path: {
                /** @description The command's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The command. */
            200: {
                headers: {
                    /** @description The command's version, quoted. */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandDetail"];
                };
            };
            /** @description Unchanged (after waiting, with `wait`). */
            304: {
                headers: {
                    /** @description The command's version, quoted. */
                    ETag?: string;
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    listAttempts: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The command's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The runs. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AttemptList"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    cancelCommand: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The command's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Cancelled, or cancel requested. */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandView"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            /** @description `origin_not_allowed`: pages of that origin may not call this server. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            404: components["responses"]["NotFound"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            409: components["responses"]["Conflict"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    discardCommand: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The command's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Discarded. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandView"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            409: components["responses"]["Conflict"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    rescheduleCommand: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The command's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["Reschedule"];
            };
        };
        responses: {
            /** @description Re-timed. */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandView"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            409: components["responses"]["Conflict"];
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    retryCommand: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The command's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Back in the queue. */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CommandView"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            /** @description `origin_not_allowed`: pages of that origin may not call this server. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            404: components["responses"]["NotFound"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            409: components["responses"]["Conflict"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    events: {
        parameters: {
            query?: {
                /** @description Follow these commands: comma-separated ids, at most 1,000. */
                ids?: string;
                /** @description Follow every command in the credential's reach (`true`); exactly one of `ids` and `all`. */
                all?: boolean;
                /** @description Resume after this cursor (`Last-Event-ID` wins when both are sent). */
                since?: string;
                /**
                 * @description A browser token, for `EventSource`, which cannot send `Authorization` (never an API key:
                 *     keys never go in URLs). Never logged.
                 */
                access_token?: string;
            };
            header?: {
                /** @description The last event id received: what `EventSource` sends by itself when it reconnects. */
                "Last-Event-ID"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The stream of events. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": components["schemas"]["SseEvent"];
                };
            };
            /** @description `bad_request`: name exactly one of `ids` and `all=true`; `bad_cursor`: not a cursor this server sent. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `unauthorized`: no valid credential; `key_in_query`: an API key in `access_token` (keys go in the `Authorization` header only). */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `forbidden`: the credential lacks `read`. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description A socket cap is reached (a stream counts as a socket), or too many requests. */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `unavailable`: the status database cannot be reached. */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listKeys: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The keys (never their secrets). */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["KeyList"];
                };
            };
            /** @description `host_not_allowed`: this server does not answer for that host name. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    createKey: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["NewKeyRequest"];
            };
        };
        responses: {
            /** @description The key, shown this once. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CreatedKey"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    revokeKey: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The key's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Revoked. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `not_found`: no such key of the caller's tenant. */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    listQueues: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The queues. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QueueList"];
                };
            };
            /** @description `host_not_allowed`: this server does not answer for that host name. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    listSchedules: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The schedules, oldest first. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleList"];
                };
            };
            /** @description `host_not_allowed`: this server does not answer for that host name. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    createSchedule: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ScheduleRequest"];
            };
        };
        responses: {
            /** @description Recorded. */
            201: {
                headers: {
                    /** @description The schedule's URL. */
                    Location?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleView"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            409: components["responses"]["Conflict"];
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    deleteSchedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The schedule's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted. */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    pauseSchedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The schedule's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Paused. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleView"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    resumeSchedule: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The schedule's id. */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Resumed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ScheduleView"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            409: components["responses"]["Conflict"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    getStats: {
        parameters: {
            query?: {
                /** @description The size of each bucket: `minute` (the default) or `hour`. */
                bucket?: "minute" | "hour";
                /**
                 * @description The first bucket holds this time (RFC 3339). Default: 2 hours ago for minutes, 7 days
                 *     for hours; at most 24 hours back for minutes and 8 days for hours (earlier is cut).
                 */
                since?: string;
                type?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Runs per bucket and type. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Stats"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    mintToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["TokenRequest"];
            };
        };
        responses: {
            /** @description The token. */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Minted"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            413: components["responses"]["PayloadTooLarge"];
            415: components["responses"]["UnsupportedMediaType"];
            422: components["responses"]["UnprocessableEntity"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    listTypes: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The catalogue. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TypeList"];
                };
            };
            /** @description `host_not_allowed`: this server does not answer for that host name. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description `origin_not_allowed`: pages of that origin may not call this server. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    pauseType: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The type's name. */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Paused. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PauseState"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    resumeType: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The type's name. */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Resumed. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PauseState"];
                };
            };
            400: components["responses"]["BadRequest"];
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            404: components["responses"]["NotFound"];
            /** @description `request_timeout`: the request body did not arrive in time. */
            408: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    whoami: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The caller. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WhoAmI"];
                };
            };
            /** @description `host_not_allowed`: this server does not answer for that host name. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            401: components["responses"]["Unauthorized"];
            /** @description `origin_not_allowed`: pages of that origin may not call this server. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    listWorkers: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The live workers. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WorkerList"];
                };
            };
            /** @description `host_not_allowed`: this server does not answer for that host name. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            401: components["responses"]["Unauthorized"];
            403: components["responses"]["Forbidden"];
            429: components["responses"]["RateLimited"];
            503: components["responses"]["Unavailable"];
        };
    };
    websocket: {
        parameters: {
            query?: never;
            header: {
                /** @description A list of connection options that holds `Upgrade`. */
                Connection: string;
                /** @description `websocket`, in any case. */
                Upgrade: string;
                /** @description `13`. */
                "Sec-WebSocket-Version": string;
                /** @description 16 random bytes in base64. */
                "Sec-WebSocket-Key": string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Switching to the WebSocket protocol. */
            101: {
                headers: {
                    /** @description `upgrade`. */
                    Connection?: string;
                    /** @description The handshake's answer. */
                    "Sec-WebSocket-Accept"?: string;
                    /** @description `websocket`. */
                    Upgrade?: string;
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description `not_websocket`: not a valid WebSocket handshake. */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `unauthorized`: the `Authorization` header holds no valid credential. */
            401: {
                headers: {
                    /** @description `Bearer realm="cmdbus"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `origin_not_allowed`: pages of that origin may not call this server. */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `upgrade_required`: the connection cannot be upgraded (HTTP/1.0). */
            426: {
                headers: {
                    /** @description `websocket`. */
                    Upgrade?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description `unavailable`: credentials cannot be checked now. */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
}

// ---- types.js
export type CommandView = components["schemas"]["CommandView"];
export type Problem = components["schemas"]["Problem"];
export type Page = components["schemas"]["Page"];
export type Status = components["schemas"]["Status"];
export type ListFilter = NonNullable<operations["listCommands"]["parameters"]["query"]>;
/**
 * Who is followed: chosen commands, or every command the credential reaches (a tenant's for a
 * key; a browser token's subject or ids).
 */
export type Selection = {
    ids: string[];
} | {
    all: true;
};
/**
 * How changes arrive now: `live` (a WebSocket or an event stream is subscribed), `reconnecting`
 * (none is: the library is trying again), `polling` (the HTTP change feed answers).
 */
export type ConnectionState = "live" | "reconnecting" | "polling";
/**
 * A message of `/v1/ws` from the server.
 */
export type ServerMessage = {
    op: "authenticated";
    tenant: string;
    scopes: string[];
    expires_at?: number;
} | {
    op: "subscribed";
    cursor: string;
} | {
    op: "command";
    command: CommandView;
    cursor?: string;
} | {
    op: "renew";
    expires_at?: number;
} | {
    op: "reset";
    cursor?: string;
} | {
    op: "error";
    code: string;
    message?: string;
};
/**
 * The answer of `GET /v1/changes`.
 */
export type Changes = components["schemas"]["ChangesPage"];

// ---- versions.js
/** @typedef {import('./types.js').CommandView} CommandView */
/** id -> the newest view held; the only way in is offer(). */
export class Versions {
    /** @param {number} [limit] the most views held (default: no limit) */
    constructor(limit?: number);
    /**
     * Keeps `view` if it is newer than the one held for its id.
     * @param {unknown} view anything a server sent
     * @returns {CommandView|null} the view, when it was newer and is now held; else null
     */
    offer(view: unknown): CommandView | null;
    /**
     * @param {string} id
     * @returns {CommandView|undefined}
     */
    get(id: string): CommandView | undefined;
    #private;
}

// ---- credential.js
/**
 * Whether `token` looks like a browser token (a JWT) rather than an API key: only a token may
 * go in a URL (`/v1/events?access_token=`).
 * @param {string} token
 */
declare function isBrowserToken(token: string): boolean;
declare class Credential {
    /** @param {string | (() => string | Promise<string>)} source */
    constructor(source: string | (() => string | Promise<string>));
    /** @returns {boolean} whether asking again can give another credential */
    get renewable(): boolean;
    /**
     * The credential to send: the one held unless `fresh` is asked or it is about to expire.
     * Callers asking at once share one call of the application's function.
     * @param {boolean} [fresh]
     * @returns {Promise<string>}
     */
    get(fresh?: boolean): Promise<string>;
    #private;
}

// ---- http.js
/**
 * @typedef {object} RequestOptions
 * @property {unknown} [body] sent as JSON
 * @property {Record<string, string>} [headers]
 * @property {AbortSignal} [signal]
 * @property {number[]} [accept] statuses besides 2xx answered as data rather than thrown
 */
/**
 * @param {string} base the server's URL, without a trailing slash
 * @param {Credential} credential
 * @param {string} method
 * @param {string} path
 * @param {RequestOptions} [options]
 * @returns {Promise<{status: number, data: any}>}
 */
declare function request(base: string, credential: Credential, method: string, path: string, options?: RequestOptions): Promise<{
    status: number;
    data: any;
}>;
/** @typedef {import('./types.js').Problem} Problem */
/** @typedef {import('./credential.js').Credential} Credential */
/** A request that failed: `status` 0 when the server did not answer, else its problem+json. */
export class ApiError extends Error {
    /**
     * @param {number} status
     * @param {Partial<Problem>|null} problem
     * @param {string} message
     */
    constructor(status: number, problem: Partial<Problem> | null, message: string);
    /** @type {number} */
    status: number;
    /** @type {Partial<Problem>|null} */
    problem: Partial<Problem> | null;
    /** @returns {string|null} the problem's stable `code` */
    get code(): string | null;
    /** @returns {boolean} whether trying the same request again may succeed */
    get retryable(): boolean;
}
export type RequestOptions = {
    /**
     * sent as JSON
     */
    body?: unknown;
    headers?: Record<string, string> | undefined;
    signal?: AbortSignal | undefined;
    /**
     * statuses besides 2xx answered as data rather than thrown
     */
    accept?: number[] | undefined;
};

// ---- transports.js
declare function openWebSocket(session: Session, link: Link): Connection;
declare function openEventStream(session: Session, link: Link): Connection;
declare function openChangeFeed(session: Session, link: Link): Connection;
export namespace TRANSPORTS {
    export { openWebSocket as websocket };
    export { openEventStream as sse };
    export { openChangeFeed as feed };
}
/**
 * how a connection ended
 */
export type Ending = {
    /**
     * it was subscribed (so this is a drop, not a failure to connect)
     */
    connected: boolean;
    /**
     * reconnect at once: a graceful restart (1012), the end of an event
     * stream that was open, a token refused (with a fresh one asked for)
     */
    now?: boolean | undefined;
    /**
     * the credential was refused: ask the application again
     */
    unauthorized?: boolean | undefined;
    /**
     * the credential lacks `read`: give up
     */
    forbidden?: boolean | undefined;
};
/**
 * what a transport tells its stream
 */
export type Link = {
    /**
     * caught up (the replay, if any, was sent)
     */
    subscribed: (cursor: string | null) => void;
    /**
     * a command changed
     */
    command: (view: CommandView, cursor?: string) => void;
    /**
     * the cursor moved with no change to show
     */
    moved: (cursor?: string) => void;
    /**
     * changes were skipped: re-read, go on from
     * `cursor` (null: the held cursor is refused, start from now)
     */
    reset: (cursor?: string | null) => void;
    /**
     * the connection ended (called once)
     */
    closed: (ending: Ending) => void;
};
/**
 * what a transport connects with
 */
export type Session = {
    /**
     * the server's URL
     */
    base: string;
    credential: Credential;
    /**
     * the credential to open with
     */
    token: string;
    selection: Selection;
    /**
     * where to resume from (null: from now)
     */
    cursor: string | null;
};
export type Connection = {
    close(): void;
};
export type Opener = (session: Session, link: Link) => Connection;

// ---- stream.js
/** 0.5 s, 1 s, 2 s … capped at 10 s, each ±25%, so a fleet of tabs does not reconnect in step.
 *  @param {number} failures */
declare function backoff(failures: number): number;
declare class Stream {
    /**
     * @param {Host} host
     * @param {Selection} selection
     * @param {(view: CommandView) => void} onView each newer view
     * @param {() => void} [onReset] changes were skipped (with `all`: reload what you show)
     * @param {string} [name] names the stored cursor (default: the selection)
     */
    constructor(host: Host, selection: Selection, onView: (view: CommandView) => void, onReset?: () => void, name?: string);
    /** @type {ConnectionState} */
    state: ConnectionState;
    /** The views held, newest version of each (with `all`, of the commands changed last). */
    versions: Versions;
    /**
     * Follows `ids` from now on: reconnects at once with them, from the same cursor (still sound:
     * it covers what was followed, and a command followed anew is read once the new subscription
     * is caught up, so changes after the cursor reach it by the replay and the rest by the read).
     * @param {string[]} ids
     */
    update(ids: string[]): void;
    /** @returns {string|null} where the stream resumes from after a drop or a reload */
    get cursor(): string | null;
    /** @returns {TransportName} the transport in use or being tried */
    get transport(): TransportName;
    start(): void;
    /** Stops for good. `forget`: drop the stored cursor too (nothing more will be asked). */
    close(forget?: boolean): void;
    #private;
}
export type TransportName = keyof typeof TRANSPORTS;
/**
 * What a stream needs from its client.
 */
export type Host = {
    base: string;
    credential: Credential;
    /**
     * the order to try them in
     */
    transports: TransportName[];
    /**
     * re-reads one command (null: gone)
     */
    read: (id: string) => Promise<CommandView | null>;
    stateChanged: () => void;
    /**
     * a failure no retry can mend (the credential lacks `read`)
     */
    failed: (error: Error) => void;
};

// ---- watch.js
/**
 * @param {CommandView|undefined} held the view the client holds already, if any
 * @param {(take: (view: CommandView) => void) => () => void} follow starts giving views to
 *   `take` (each newer than the last); returns what stops it
 * @returns {CommandWatch}
 */
declare function commandWatch(held: CommandView | undefined, follow: (take: (view: CommandView) => void) => () => void): CommandWatch;
/** @typedef {import('./types.js').CommandView} CommandView */
/** The statuses a command does not leave by itself. */
export const TERMINAL: readonly string[];
/**
 * @typedef {object} DoneOptions
 * @property {boolean} [rejectOnFailure] reject with a CommandFailed when it ends `fail` or `cancelled`
 */
/**
 * A watched command.
 * @typedef {object} CommandWatch
 * @property {CommandView|undefined} current the newest view held
 * @property {(fn: (view: CommandView) => void) => () => void} subscribe calls `fn` with every newer
 *   view (at once with the current one); returns the unsubscribe
 * @property {(options?: DoneOptions) => Promise<CommandView>} done the final view
 * @property {() => void} close stop following it
 */
/** A command that ended `fail` or `cancelled`, for `done({ rejectOnFailure: true })`. */
export class CommandFailed extends Error {
    /** @param {CommandView} view */
    constructor(view: CommandView);
    /** @type {CommandView} */
    view: CommandView;
}
export type DoneOptions = {
    /**
     * reject with a CommandFailed when it ends `fail` or `cancelled`
     */
    rejectOnFailure?: boolean | undefined;
};
/**
 * A watched command.
 */
export type CommandWatch = {
    /**
     * the newest view held
     */
    current: CommandView | undefined;
    /**
     * calls `fn` with every newer
     * view (at once with the current one); returns the unsubscribe
     */
    subscribe: (fn: (view: CommandView) => void) => () => void;
    /**
     * the final view
     */
    done: (options?: DoneOptions) => Promise<CommandView>;
    /**
     * stop following it
     */
    close: () => void;
};

// ---- index.js
/**
 * A client of the cmdbus server at `url`.
 * @param {ClientOptions} options
 */
export function createClient(options: ClientOptions): Client;
export class Client {
    /** @param {ClientOptions} options */
    constructor({ url, token, transports, onError }: ClientOptions);
    /** @returns {ConnectionState} how changes arrive now (over every followed selection) */
    get state(): ConnectionState;
    /**
     * Calls `fn` whenever `state` changes; returns the unsubscribe.
     * @param {(state: ConnectionState) => void} fn
     */
    onState(fn: (state: ConnectionState) => void): () => void;
    /**
     * Any call of the API: JSON in and out, the token renewed on a 401.
     * @param {string} method
     * @param {string} path e.g. `/v1/types`
     * @param {import('./http.js').RequestOptions} [options]
     */
    request(method: string, path: string, options?: RequestOptions): Promise<{
        status: number;
        data: any;
    }>;
    /**
     * Submits a command; retried on network errors, 429 and 5xx with the same idempotency key, so
     * the server runs it once however often it is sent.
     * @param {string} type
     * @param {unknown} payload
     * @param {SubmitOptions} [options]
     * @returns {Promise<CommandView>}
     */
    submit(type: string, payload: unknown, options?: SubmitOptions): Promise<CommandView>;
    /**
     * A command's view (`GET /v1/commands/{id}`).
     * @param {string} id
     * @returns {Promise<CommandView>}
     */
    get(id: string): Promise<CommandView>;
    /**
     * A page of commands, newest first (`GET /v1/commands`).
     * @param {ListFilter} [filter]
     * @returns {Promise<Page>}
     */
    list(filter?: ListFilter): Promise<Page>;
    /**
     * Follows one command until it ends. Every command watched through one client shares one
     * connection, whatever the number of watches.
     * @param {string} id
     * @returns {import('./watch.js').CommandWatch}
     */
    watch(id: string): CommandWatch;
    /**
     * Follows many commands (chosen ids, at most 1,000) or every command in reach; `onChange` gets
     * each newer view. With `all`, `onReset` is called when changes were skipped: reload what you
     * show (with `ids`, the library re-reads them itself).
     * @param {Selection} selection
     * @param {(view: CommandView) => void} onChange
     * @param {{ onReset?: () => void }} [options]
     * @returns {{ close(): void, readonly cursor: string|null }}
     */
    watchMany(selection: Selection, onChange: (view: CommandView) => void, { onReset }?: {
        onReset?: () => void;
    }): {
        close(): void;
        readonly cursor: string | null;
    };
    /** Stops following everything. */
    close(): void;
    #private;
}
export type ClientOptions = {
    /**
     * the cmdbus server, e.g. `https://bus.example.com`
     */
    url: string;
    /**
     * a browser token (or API key), or a
     * function giving one, asked again when the server says it expires or refuses it
     */
    token: string | (() => string | Promise<string>);
    /**
     * the transports to use, in order (default: all:
     * `websocket`, `sse`, `feed`)
     */
    transports?: ("websocket" | "sse" | "feed")[] | undefined;
    /**
     * a failure no retry mends (the token lacks `read`)
     */
    onError?: ((error: Error) => void) | undefined;
};
export type SubmitOptions = {
    /**
     * default: a new random one, reused by this call's retries
     */
    idempotencyKey?: string | undefined;
    /**
     * 0 (lowest) to 9
     */
    priority?: number | undefined;
    /**
     * commands with one key run one at a time, in order
     */
    orderingKey?: string | undefined;
    maxAttempts?: number | undefined;
    /**
     * the end user the command is for
     */
    subject?: string | undefined;
};
