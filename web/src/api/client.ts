// The typed API client: paths and bodies come from `schema.d.ts`, which
// `npm run gen` makes from `web/openapi.json` (a Rust test keeps that file
// equal to what the server serves), so a renamed field fails `tsc`.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

export const api = createClient<paths>({ baseUrl: "" });

/** The error every DAARION endpoint answers with, as a thrown value. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
    /** Seconds to wait before asking again (429's `Retry-After`). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: { code?: string; message?: string; request_id?: string };
}

const unauthorized = new Set<() => void>();

/** Told when any call answers 401 (the session has ended). */
export function onUnauthorized(listener: () => void): () => void {
  unauthorized.add(listener);
  return () => unauthorized.delete(listener);
}

/**
 * Unwraps an openapi-fetch result: the data, or an `ApiFailure` built from
 * the error body (or the status alone when the body is not ours).
 */
export async function ok<D>(
  call: Promise<{ data?: D; error?: unknown; response: Response }>,
): Promise<D> {
  let result: Awaited<typeof call>;
  try {
    result = await call;
  } catch (cause) {
    throw new ApiFailure(0, "network", cause instanceof Error ? cause.message : String(cause));
  }
  const { data, error, response } = result;
  if (response.ok) return data as D;
  throw failure(response, error);
}

/**
 * The `ApiFailure` for a refused response and its decoded body (or the
 * status alone when the body is not ours); a 401 tells the listeners.
 */
export function failure(response: Response, body: unknown): ApiFailure {
  if (response.status === 401) for (const l of unauthorized) l();
  const error = (body ?? {}) as ErrorBody;
  return new ApiFailure(
    response.status,
    error.error?.code ?? `http_${response.status}`,
    error.error?.message ?? response.statusText,
    error.error?.request_id ?? response.headers.get("x-request-id") ?? undefined,
    Number(response.headers.get("retry-after")) || undefined,
  );
}

/**
 * `load()`, asked again after the server's `Retry-After` while it answers
 * 429 (a reader who has just posted a lot still sees the room), at most
 * `attempts` times.
 */
export async function patiently<D>(load: () => Promise<D>, attempts = 5): Promise<D> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await load();
    } catch (e) {
      if (!(e instanceof ApiFailure) || e.status !== 429 || attempt >= attempts) throw e;
      await new Promise((r) => setTimeout(r, 1000 * (e.retryAfter ?? 1)));
    }
  }
}

/** A fresh `Idempotency-Key` for a create, so a retried send is not doubled. */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}
