/**
 * Key strategies: where an operation's stream and snapshot live. The default
 * puts one operation's keys in one Redis Cluster slot with a hash tag, so one
 * atomic script writes both. Presets reproduce older layouts so an existing
 * deployment can move over without a flag day.
 *
 * @module
 */

/**
 * Where an operation's keys live. Ids reaching a strategy are already
 * validated (`ID_PATTERN`: letters, digits and `_ . : @ / -`). A
 * strategy must keep operations apart: distinct ids give distinct keys, and
 * no operation's events key equals another's state key or a scope's key.
 * Ids may contain `:`, so separate the kinds of key by something an id
 * cannot hold (a brace, a `#`) or by a different leading part.
 */
export interface KeyStrategy {
  /** Stream of an operation's events. */
  events(op: string): string;
  /** Snapshot hash of an operation. */
  state(op: string): string;
  /** Stream of every event of a scope (a user, a tenant). */
  scope(scope: string): string;
}

/**
 * The default strategy: `{prefix}:{<op>}:events`, `{prefix}:{<op>}:state`,
 * `{prefix}:scope:{<scope>}:events`.
 *
 * @example
 * ```ts
 * defaultKeys("pc").events("job-1"); // "pc:{job-1}:events"
 * ```
 */
export function defaultKeys(prefix: string): KeyStrategy {
  return {
    events: (op) => `${prefix}:{${op}}:events`,
    state: (op) => `${prefix}:{${op}}:state`,
    scope: (scope) => `${prefix}:scope:{${scope}}:events`,
  };
}

/**
 * Presets reproducing key layouts of earlier deployments. Their keys have no
 * hash tag: fine on a single Redis node, not on a Cluster. Each keeps its
 * operations apart whatever the (valid) ids: the stream and snapshot keys of
 * the earlier layouts are kept literally, and the keys they did not have
 * (scope streams, the `operations` snapshot) use a `#`, which no id holds.
 *
 * @example
 * ```ts
 * createProgress({ port, keys: keyPresets.chunking });
 * ```
 */
export const keyPresets: {
  /** `stream:chunking:{op}` and `chunking:progress:{op}`. */
  readonly chunking: KeyStrategy;
  /** `import_progress:channel:{op}` (stream) and `import_progress:hash:{op}`. */
  readonly importProgress: KeyStrategy;
  /** `operations:{op}` (stream) and `operations:state#{op}` (snapshot). */
  readonly operations: KeyStrategy;
} = {
  chunking: {
    events: (op) => `stream:chunking:${op}`,
    state: (op) => `chunking:progress:${op}`,
    scope: (scope) => `stream:chunking:scope#${scope}`,
  },
  importProgress: {
    events: (op) => `import_progress:channel:${op}`,
    state: (op) => `import_progress:hash:${op}`,
    scope: (scope) => `import_progress:scope#${scope}`,
  },
  operations: {
    events: (op) => `operations:${op}`,
    // Not `operations:{op}:state`: that is the stream of the operation named `{op}:state`.
    state: (op) => `operations:state#${op}`,
    scope: (scope) => `operations:scope#${scope}`,
  },
};
