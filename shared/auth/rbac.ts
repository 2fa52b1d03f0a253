import type { ControlPlaneSettings } from '../config.js';
import { AppError } from '../errors.js';
import { type Principal, type Role, roles as knownRoles } from './principal.js';

/** Which Entra groups grant which dbdist role (app roles in the token grant them too). */
export interface RbacPolicy {
  adminGroupIds: readonly string[];
  approverGroupIds: readonly string[];
  auditorGroupIds: readonly string[];
  requesterGroupIds: readonly string[];
}

/** The role-bearing facts of a validated token. */
export interface RoleClaims {
  /** The `roles` claim: app roles assigned to the user or application. */
  roles?: readonly string[];
  /** The `groups` claim: group object ids. */
  groups?: readonly string[];
  /** True for an app-only (client-credentials) token. */
  isApplication: boolean;
}

/** Roles a group can grant. `Runner` is deliberately absent: only the on-prem runner's app identity holds it. */
type GroupGrantedRole = Exclude<Role, 'Runner'>;

function groupRoleMap(policy: RbacPolicy): ReadonlyArray<[GroupGrantedRole, readonly string[]]> {
  return [
    ['Admin', policy.adminGroupIds],
    ['Approver', policy.approverGroupIds],
    ['Auditor', policy.auditorGroupIds],
    ['Requester', policy.requesterGroupIds],
  ];
}

const isKnownRole = (value: string): value is Role => (knownRoles as readonly string[]).includes(value);

/** Group ids compare case-insensitively: settings may hold upper-case GUIDs, tokens carry lower-case ones. */
const normalizeId = (id: string): string => id.trim().toLowerCase();

/**
 * dbdist roles of a caller: app roles from the `roles` claim (exact names; unknown ones ignored) plus roles
 * granted by group membership through the policy. `Runner` comes only from an app role on an application
 * token: a user assigned the Runner app role, or a group, never makes someone a runner.
 */
export function resolveRoles(claims: RoleClaims, policy: RbacPolicy): Set<Role> {
  const granted = new Set<Role>();
  for (const role of claims.roles ?? []) {
    if (!isKnownRole(role)) continue;
    if (role === 'Runner' && !claims.isApplication) continue;
    granted.add(role);
  }
  const memberOf = new Set((claims.groups ?? []).map(normalizeId));
  for (const [role, groupIds] of groupRoleMap(policy)) {
    if (groupIds.some((id) => memberOf.has(normalizeId(id)))) granted.add(role);
  }
  return granted;
}

/** The principal is in at least one of the groups (a database's requesters, a schedule's recipients). */
export function isInAnyGroup(principal: Pick<Principal, 'groups'>, groupIds: readonly string[]): boolean {
  const wanted = new Set(groupIds.map(normalizeId));
  return principal.groups.some((group) => wanted.has(normalizeId(group)));
}

export function hasRole(principal: Pick<Principal, 'roles'>, ...anyOf: Role[]): boolean {
  return anyOf.some((role) => principal.roles.has(role));
}

/** Throws AppError `forbidden` unless the caller holds at least one of the roles. */
export function requireRole(principal: Pick<Principal, 'roles'>, ...anyOf: Role[]): void {
  if (anyOf.length === 0) throw new Error('requireRole needs at least one role');
  if (!hasRole(principal, ...anyOf)) {
    const needed = anyOf.length === 1 ? `the ${anyOf[0]} role` : `one of the roles ${anyOf.join(', ')}`;
    throw new AppError('forbidden', `This operation requires ${needed}.`);
  }
}

export function rbacPolicyFromSettings(
  settings: Pick<ControlPlaneSettings, 'RBAC_ADMIN_GROUP_IDS' | 'RBAC_APPROVER_GROUP_IDS' | 'RBAC_AUDITOR_GROUP_IDS' | 'RBAC_REQUESTER_GROUP_IDS'>,
): RbacPolicy {
  return {
    adminGroupIds: settings.RBAC_ADMIN_GROUP_IDS,
    approverGroupIds: settings.RBAC_APPROVER_GROUP_IDS,
    auditorGroupIds: settings.RBAC_AUDITOR_GROUP_IDS,
    requesterGroupIds: settings.RBAC_REQUESTER_GROUP_IDS,
  };
}
