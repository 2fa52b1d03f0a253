/** dbdist's roles. Users get them from group membership or app roles; the runner from the `Runner` app role. */
export const roles = ['Admin', 'Approver', 'Auditor', 'Requester', 'Runner'] as const;
export type Role = (typeof roles)[number];
/** The delegated permission the API app registration exposes to people (Entra: "Expose an API"). */
export const API_SCOPE_NAME = 'access_as_user';

/** Who is calling, as established from a validated Entra token. */
export interface Principal {
  /** Object id (`oid`) of the user or service principal. */
  oid: string;
  tenantId: string;
  /** `preferred_username` (v2) or `upn`/`unique_name` (v1); absent for applications. */
  upn?: string;
  displayName?: string;
  /** True for client-credentials (app-only) tokens. */
  isApplication: boolean;
  /** Application (client) id the token was issued to (`azp`/`appid`). */
  clientId?: string;
  roles: ReadonlySet<Role>;
  /** Group object ids from the `groups` claim. */
  groups: readonly string[];
}

/** Request facts that go into audit rows next to the principal. */
export interface RequestOrigin {
  ip?: string;
  userAgent?: string;
}
