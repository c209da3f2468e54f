// The few building blocks every page uses: errors from the API's error
// shape, loading and empty states, labelled fields, async data.
import type { ComponentChildren, JSX } from "preact";
import { useCallback, useEffect, useId, useState } from "preact/hooks";
import { ApiFailure, api, ok } from "./api/client";
import type { Key } from "./i18n";
import { useI18n } from "./i18n";

/** An error as a person can act on it: what went wrong, and the request id to report. */
export function ErrorNote({ error }: { error: unknown }) {
  const { t } = useI18n();
  if (!error) return null;
  let text: string;
  let request: string | undefined;
  if (error instanceof ApiFailure) {
    text =
      error.status === 0
        ? t("error.network")
        : error.status === 429
          ? t("error.rate_limited")
          : error.status === 403
            ? t("error.forbidden", { message: error.message })
            : error.message;
    request = error.requestId;
  } else {
    text = error instanceof Error ? error.message : String(error);
  }
  return (
    <div class="error" role="alert">
      {text}
      {request && <div class="small muted">{t("error.request_id", { id: request })}</div>}
    </div>
  );
}

export function Loading() {
  const { t } = useI18n();
  return (
    <p class="muted" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {t("common.loading")}
    </p>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

export function Field({
  label,
  hint,
  children,
}: {
  label: string;
  hint?: string;
  children: (id: string) => JSX.Element;
}) {
  const id = useId();
  return (
    <div>
      <label for={id}>
        {label} {hint && <span class="hint">{hint}</span>}
      </label>
      {children(id)}
    </div>
  );
}

export function Busy({ busy, label }: { busy: boolean; label: Key }) {
  const { t } = useI18n();
  return (
    <>
      {busy && <span class="spinner" aria-hidden="true" />} {t(label)}
    </>
  );
}

/** Loads data for a page; `reload` fetches it again. */
export function useLoad<D>(load: () => Promise<D>, deps: unknown[]) {
  const [data, setData] = useState<D | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setError(null);
    load().then(
      (d) => live && setData(d),
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, reload, setData };
}

/** Runs an action with a busy flag and its error kept for display. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}

interface PageOf<T> {
  items: T[];
  next_cursor?: string | null;
}

/**
 * A cursor-paged list: the first page on mount, the next on `more()`.
 * `items` is `undefined` until the first page arrives.
 */
export function usePaged<T>(
  fetchPage: (cursor: string | undefined) => Promise<PageOf<T>>,
  deps: unknown[],
) {
  const [items, setItems] = useState<T[] | undefined>(undefined);
  const [cursor, setCursor] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const load = (after: string | undefined) =>
    run(async () => {
      const page = await fetchPage(after);
      setItems((known) => (after ? [...(known ?? []), ...page.items] : page.items));
      setCursor(page.next_cursor ?? null);
    });
  useEffect(() => {
    void load(undefined);
  }, deps);
  return {
    items,
    setItems,
    busy,
    error,
    hasMore: cursor !== null,
    more: () => (cursor ? load(cursor) : Promise.resolve()),
    reload: () => load(undefined),
  };
}

/** The "load more" button of a paged list. */
export function MoreButton({
  paged,
}: {
  paged: { hasMore: boolean; busy: boolean; more: () => Promise<void> };
}) {
  if (!paged.hasMore) return null;
  return (
    <button type="button" class="secondary" onClick={() => paged.more()} disabled={paged.busy}>
      <Busy busy={paged.busy} label="common.more" />
    </button>
  );
}

/**
 * A list's section: loading until the first items arrive, then the items
 * (or `empty`), with the last error above them (a first load that failed,
 * or a later page that did).
 */
export function Listed<T>({
  items,
  error,
  empty,
  children,
}: {
  items: T[] | undefined;
  error: unknown;
  empty: string;
  children: (items: T[]) => ComponentChildren;
}) {
  if (items === undefined) return error ? <ErrorNote error={error} /> : <Loading />;
  return (
    <>
      <ErrorNote error={error} />
      {items.length === 0 ? <Empty>{empty}</Empty> : children(items)}
    </>
  );
}

/** Usernames of the `user:<id>` names among `actors`, looked up together. */
export function usePeople(actors: string[]) {
  const ids = [...new Set(actors.filter((a) => a.startsWith("user:")).map((a) => a.slice(5)))];
  const key = ids.join(",");
  const people = useLoad(
    () =>
      key
        ? ok(api.GET("/api/auth/people", { params: { query: { ids: key } } })).then((p) => p.items)
        : Promise.resolve([]),
    [key],
  );
  // Names are asked once per set of people: a lookup that failed on the
  // way (the network, a busy city) is asked again rather than leaving
  // raw ids on the page for good.
  const { error, reload } = people;
  useEffect(() => {
    const transient =
      error && !(error instanceof ApiFailure && error.status < 500 && error.status !== 429);
    if (!transient) return;
    const again = setTimeout(reload, 2000);
    return () => clearTimeout(again);
  }, [error, reload]);
  return (actor: string) => people.data?.find((p) => `user:${p.id}` === actor)?.username ?? actor;
}
