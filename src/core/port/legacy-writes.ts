/**
 * The writes for old readers that legacy mode attaches to an append item
 * (see `src/core/compat/legacy.ts`): data the port carries, never builds.
 *
 * @module
 */
/** Field/value pairs (the port's `Fields`, spelled out so this file imports nothing). */
type Fields = Record<string, string>;

/** One write for old readers: a hash merge, a stream entry, or a publish. */
export type LegacyWrite =
  | { readonly kind: "hash"; readonly key: string; readonly fields: Fields }
  | {
      readonly kind: "stream";
      readonly key: string;
      /** Values equal to {@link FROM_SNAPSHOT_INT} take the snapshot's progress, rounded to an integer. */
      readonly fields: Fields;
      /** The operation's snapshot key, read for values taken from the snapshot. */
      readonly stateKey: string;
    }
  | { readonly kind: "publish"; readonly channel: string; readonly message: string };

/** A stream field value the script replaces with the snapshot's progress, rounded to an integer. */
export const FROM_SNAPSHOT_INT = "\u0001p";
/** A stream field value the script replaces with the snapshot's progress as stored. */
export const FROM_SNAPSHOT = "\u0001P";
