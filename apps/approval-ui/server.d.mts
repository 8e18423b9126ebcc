// Types of server.mjs, for TypeScript callers (tests, `npm start`).

/** A running approval UI. */
export interface RunningApprovalUi {
  /** `http://host:port`, with the port actually bound (for `port: 0`). */
  url: string;
  /** Stops listening, ends open connections (event streams) and shuts Next down. */
  close(): Promise<void>;
}

/** A hash of every source the production build reads (app, libs/core, Next and React versions). */
export function approvalUiSourceHash(): Promise<string>;

/**
 * Runs `next build` unless `.next/writ-source-hash` says the last build was made from the same
 * sources; throws with the build's output when it fails.
 */
export function ensureApprovalUiBuilt(options?: {
  log?: (line: string) => void;
  force?: boolean;
}): Promise<{ built: boolean; ms: number }>;

/** Serves the production build; `/api/*` goes to `registryUrl` (default `WRIT_REGISTRY_URL` or http://127.0.0.1:4000). */
export function startApprovalUi(options?: {
  port?: number;
  host?: string;
  registryUrl?: string;
}): Promise<RunningApprovalUi>;
