/**
 * A server stream seen by an interceptor on its way to the client: it learns how the stream ended, and may
 * replace the error it fails with. Used by the metrics, logging and errors interceptors.
 *
 * A plain async iterator rather than an async generator (`yield*`): every message of every stream passes
 * through one of these per interceptor, and three generators cost ~0.9 µs per message against ~0.3 µs for
 * three of these (a micro-benchmark of 300,000 messages). A WatchUsers fan-out to 1,000 watchers at 100
 * changes/s is 100,000 messages/s.
 */

/** What an interceptor wants to know of a stream. Each hook runs at most once, and only one of them runs. */
export interface StreamHooks {
  /** The stream ended (undefined) or failed (the error, as `mapError` left it). */
  end?(err: unknown): void;
  /** The reader stopped before the end (a cancelled call, a client that went away, a shutdown). */
  stopped?(): void;
  /** The error the reader gets instead of the one the stream failed with. */
  mapError?(err: unknown): unknown;
}

/** `inner`, passed through message by message, with `hooks` told how it ended. */
export function observeStream<T>(inner: AsyncIterable<T>, hooks: StreamHooks): AsyncIterable<T> {
  let source: AsyncIterator<T> | undefined;
  let over = false;
  const ended = (err: unknown) => {
    if (over) return;
    over = true;
    hooks.end?.(err);
  };
  const failed = (err: unknown): never => {
    const mapped = hooks.mapError ? hooks.mapError(err) : err;
    ended(mapped);
    throw mapped;
  };
  const iterator: AsyncIterator<T> = {
    next() {
      source ??= inner[Symbol.asyncIterator]();
      return source.next().then((r) => {
        if (r.done) ended(undefined);
        return r;
      }, failed);
    },
    async return(value?: unknown) {
      if (!over) {
        over = true;
        hooks.stopped?.();
      }
      await source?.return?.(value);
      return { done: true, value: value as T };
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}
