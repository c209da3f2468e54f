// The server (webauthn-rs) sends ceremony options with binary fields as
// base64url strings and wants the browser's credential back the same way.

type Json = Record<string, unknown>;

/** A credential as the API takes it (its schema says only "an object"). */
export type CredentialJson = Record<string, never>;

function serialise(credential: PublicKeyCredential, response: Json): CredentialJson {
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response,
    extensions: credential.getClientExtensionResults(),
  } as unknown as CredentialJson;
}

export function fromB64url(text: string): ArrayBuffer {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

export function toB64url(buffer: ArrayBuffer | ArrayBufferView): string {
  const bytes =
    buffer instanceof ArrayBuffer
      ? new Uint8Array(buffer)
      : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function publicKeyOf(options: unknown): Json {
  const publicKey = (options as { publicKey?: Json }).publicKey;
  if (!publicKey) throw new Error("ceremony options without publicKey");
  return publicKey;
}

function withIds(list: unknown): PublicKeyCredentialDescriptor[] | undefined {
  if (!Array.isArray(list)) return undefined;
  return list.map(
    (c: Json) => ({ ...c, id: fromB64url(String(c.id)) }) as PublicKeyCredentialDescriptor,
  );
}

/** True when this browser can use passkeys at all. */
export function supported(): boolean {
  return typeof window.PublicKeyCredential === "function";
}

/** True when the browser offers passkeys in the username field's autofill. */
export async function autofillAvailable(): Promise<boolean> {
  const check = window.PublicKeyCredential?.isConditionalMediationAvailable;
  return typeof check === "function" ? check.call(PublicKeyCredential) : false;
}

/** `navigator.credentials.create()` for options from `…/begin`. */
export async function create(options: unknown): Promise<CredentialJson> {
  const pk = publicKeyOf(options);
  const user = pk.user as Json;
  const publicKey = {
    ...pk,
    challenge: fromB64url(String(pk.challenge)),
    user: { ...user, id: fromB64url(String(user.id)) },
    excludeCredentials: withIds(pk.excludeCredentials),
  } as unknown as PublicKeyCredentialCreationOptions;
  const credential = (await navigator.credentials.create({
    publicKey,
  })) as PublicKeyCredential | null;
  if (!credential) throw new DOMException("no credential", "NotAllowedError");
  const response = credential.response as AuthenticatorAttestationResponse;
  return serialise(credential, {
    attestationObject: toB64url(response.attestationObject),
    clientDataJSON: toB64url(response.clientDataJSON),
    transports: response.getTransports?.() ?? [],
  });
}

/**
 * `navigator.credentials.get()` for options from `…/begin`; `conditional`
 * waits for the person to pick a passkey in the username field's autofill.
 */
export async function get(
  options: unknown,
  { conditional = false, signal }: { conditional?: boolean; signal?: AbortSignal } = {},
): Promise<CredentialJson> {
  const pk = publicKeyOf(options);
  const publicKey = {
    ...pk,
    challenge: fromB64url(String(pk.challenge)),
    allowCredentials: withIds(pk.allowCredentials) ?? [],
  } as unknown as PublicKeyCredentialRequestOptions;
  const request: CredentialRequestOptions = { publicKey };
  if (conditional) request.mediation = "conditional";
  if (signal) request.signal = signal;
  const credential = (await navigator.credentials.get(request)) as PublicKeyCredential | null;
  if (!credential) throw new DOMException("no credential", "NotAllowedError");
  const response = credential.response as AuthenticatorAssertionResponse;
  return serialise(credential, {
    authenticatorData: toB64url(response.authenticatorData),
    clientDataJSON: toB64url(response.clientDataJSON),
    signature: toB64url(response.signature),
    userHandle: response.userHandle ? toB64url(response.userHandle) : null,
  });
}

/**
 * Runs a passkey prompt; the browser's refusal (closed, timed out) becomes
 * `message`, which a person can act on, instead of a DOMException.
 */
export async function prompt<T>(ceremony: () => Promise<T>, message: string): Promise<T> {
  try {
    return await ceremony();
  } catch (e) {
    throw cancelled(e) ? new Error(message) : e;
  }
}

/** The browser's refusals (cancelled, timed out) as one kind of error. */
export function cancelled(error: unknown): boolean {
  return (
    error instanceof DOMException &&
    (error.name === "NotAllowedError" || error.name === "AbortError")
  );
}
