export {
  type Authorization,
  authorize,
  type CallerClaims,
  type CallerRule,
  callerOf,
  scopesOf,
} from "./access.ts";
export {
  type IssuerClient,
  type IssuerOptions,
  type LocalIssuer,
  startLocalIssuer,
  type TokenClaims,
} from "./issuer.ts";
export {
  ACCEPTED_ALGORITHMS,
  AuthError,
  createTokenSource,
  createVerifier,
  type TokenSourceOptions,
  type Verifier,
  type VerifierOptions,
} from "./verifier.ts";
