export {
  type IssuerClient,
  type IssuerOptions,
  type LocalIssuer,
  startLocalIssuer,
  type TokenClaims,
} from "./issuer.ts";
export {
  AuthError,
  createTokenSource,
  createVerifier,
  type TokenSourceOptions,
  type Verifier,
  type VerifierOptions,
} from "./verifier.ts";
