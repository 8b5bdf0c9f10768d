/**
 * Signed-token authorization for `progresscast serve`: a JWT (HS256 with a
 * shared secret, or RS256/ES256 with a public key) whose `ops` and `scopes`
 * claims list what its bearer may watch, verified with `jose`.
 *
 * @module
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { decodeProtectedHeader, errors, jwtVerify } from "jose";
import { type Authorize, UnauthorizedError, type WatchTarget } from "../index.ts";
import { UsageError } from "./args.ts";

/** An HS256 secret shorter than this many bytes is refused (RFC 7518 3.2: at least the hash's size). */
export const MIN_SECRET_BYTES = 32;

/** The keys tokens are verified with. */
export interface TokenKeys {
  /** The HS256 secret, as bytes. */
  readonly secret?: Uint8Array | undefined;
  /** A public key and the algorithm its tokens are signed with. */
  readonly publicKey?: { readonly key: KeyObject; readonly alg: PublicAlgorithm } | undefined;
}

/** Algorithms of public-key tokens. */
export type PublicAlgorithm = "RS256" | "ES256" | "ES384" | "ES512";

/** What a verified token lets its bearer watch. */
export interface Grant {
  readonly ops: ReadonlySet<string>;
  readonly scopes: ReadonlySet<string>;
}

/**
 * The HS256 secret as bytes.
 *
 * @throws {UsageError} when it is shorter than {@link MIN_SECRET_BYTES} bytes.
 */
export function secretKey(secret: string): Uint8Array {
  const bytes = new TextEncoder().encode(secret);
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new UsageError(
      `the JWT secret must be at least ${MIN_SECRET_BYTES} bytes (got ${bytes.byteLength}); ` +
        "make one with: openssl rand -base64 32",
    );
  }
  return bytes;
}

const CURVES: Readonly<Record<string, PublicAlgorithm>> = {
  prime256v1: "ES256",
  "P-256": "ES256",
  secp384r1: "ES384",
  "P-384": "ES384",
  secp521r1: "ES512",
  "P-521": "ES512",
};

/**
 * A public key from PEM text (`-----BEGIN PUBLIC KEY-----` or a certificate)
 * and the algorithm of the tokens it verifies: RS256 for RSA, ES256/384/512
 * for an EC key on P-256/384/521.
 *
 * @throws {UsageError} for a private key, text that is not a key, or a key of another type.
 */
export function publicKey(pem: string, file: string): { key: KeyObject; alg: PublicAlgorithm } {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new UsageError(`${file} holds a private key: give the gateway only the public key (openssl pkey -pubout)`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new UsageError(`${file} is not a PEM public key: ${why}`);
  }
  if (key.asymmetricKeyType === "rsa") return { key, alg: "RS256" };
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const alg = key.asymmetricKeyType === "ec" && curve !== undefined ? CURVES[curve] : undefined;
  if (alg === undefined) {
    throw new UsageError(
      `${file}: a ${key.asymmetricKeyType ?? "unknown"} key${curve ? ` on ${curve}` : ""} is not supported; ` +
        "give an RSA key (RS256) or an EC key on P-256, P-384 or P-521 (ES256, ES384, ES512)",
    );
  }
  return { key, alg };
}

/**
 * The token of a request: `Authorization: Bearer <token>`, else the `token`
 * query parameter. Undefined when neither is there.
 */
export function tokenOf(authorization: string | null | undefined, url: URL): string | undefined {
  const bearer = authorization ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)?.[1] : undefined;
  if (bearer !== undefined) return bearer;
  const query = url.searchParams.get("token");
  return query === null || query === "" ? undefined : query;
}

function ids(payload: Record<string, unknown>, claim: string): Set<string> {
  const value = payload[claim];
  if (value === undefined) return new Set();
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === "string")) {
    throw new UnauthorizedError(`the token's "${claim}" claim must be a list of ids`, 401);
  }
  return new Set(value);
}

/**
 * Verifies tokens with the given keys. Results are not cached: every stream
 * and every WebSocket `watch` checks the token, so an expired token opens nothing.
 */
export class TokenVerifier {
  readonly #keys: TokenKeys;
  readonly #algorithms: string[];

  /** @throws {UsageError} when no key is given. */
  constructor(keys: TokenKeys) {
    this.#keys = keys;
    this.#algorithms = [...(keys.secret ? ["HS256"] : []), ...(keys.publicKey ? [keys.publicKey.alg] : [])];
    if (this.#algorithms.length === 0) throw new UsageError("give --jwt-secret or --jwt-public-key");
  }

  /** The algorithms accepted, e.g. `["HS256"]`. */
  get algorithms(): readonly string[] {
    return this.#algorithms;
  }

  /**
   * Verify a token and read what it grants.
   *
   * @throws {UnauthorizedError} (status 401) when the token is missing, malformed, signed with
   *   another key or algorithm, has no `exp`, or has expired.
   */
  async verify(token: string | undefined): Promise<Grant> {
    if (token === undefined) {
      throw new UnauthorizedError("a token is required: Authorization: Bearer <token>, or ?token=<token>", 401);
    }
    const { secret, publicKey } = this.#keys;
    let payload: Record<string, unknown>;
    try {
      const { alg } = decodeProtectedHeader(token);
      const key = alg === "HS256" ? secret : alg === publicKey?.alg ? publicKey?.key : undefined;
      if (key === undefined || alg === undefined) throw new errors.JOSEAlgNotAllowed("algorithm not accepted");
      ({ payload } = await jwtVerify(token, key, { algorithms: [alg], requiredClaims: ["exp"] }));
    } catch (error) {
      throw new UnauthorizedError(`invalid token: ${reason(error)}`, 401, { cause: error });
    }
    return { ops: ids(payload, "ops"), scopes: ids(payload, "scopes") };
  }

  /**
   * An `authorize` hook for the manager's `sse` and `serveWebSocket`: the
   * token of the request (found by `token`) must be valid (else 401) and list
   * the target in its `ops` or `scopes` claim (else 403).
   */
  authorize<R>(token: (request: R) => string | undefined): Authorize<R> {
    return async (request: R, target: WatchTarget): Promise<boolean> => {
      const grant = await this.verify(token(request));
      return target.op !== undefined ? grant.ops.has(target.op) : grant.scopes.has(target.scope);
    };
  }
}

/** A short reason a token was refused, fit to send back. */
function reason(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "expired";
  if (error instanceof errors.JWTClaimValidationFailed) return error.message;
  if (error instanceof errors.JWSSignatureVerificationFailed) return "bad signature";
  if (error instanceof errors.JOSEAlgNotAllowed) return "algorithm not accepted";
  if (error instanceof errors.JWTInvalid || error instanceof errors.JWSInvalid) return "malformed";
  return "cannot be verified";
}
