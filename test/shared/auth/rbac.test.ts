import { describe, expect, it } from 'vitest';
import { parseSettings, controlPlaneSettingsSchema } from '../../../shared/config.js';
import { isAppError } from '../../../shared/errors.js';
import type { Role } from '../../../shared/auth/principal.js';
import { type RbacPolicy, rbacPolicyFromSettings, requireRole, resolveRoles } from '../../../shared/auth/rbac.js';
import { requiredResourceSettings } from '../../support/settings.js';

const adminGroup = '11111111-1111-4111-8111-111111111111';
const auditorGroup = '22222222-2222-4222-8222-222222222222';
const requesterGroup = '33333333-3333-4333-8333-333333333333';
const approverGroup = '66666666-6666-4666-8666-666666666666';
const policy: RbacPolicy = {
  adminGroupIds: [adminGroup],
  auditorGroupIds: [auditorGroup],
  approverGroupIds: [approverGroup],
  requesterGroupIds: [requesterGroup],
};

const sorted = (roles: Set<Role>): Role[] => [...roles].sort();

describe('resolveRoles', () => {
  it('grants roles from groups through the policy', () => {
    expect(sorted(resolveRoles({ groups: [auditorGroup, requesterGroup], isApplication: false }, policy))).toEqual([
      'Auditor',
      'Requester',
    ]);
  });

  it('matches group ids regardless of case', () => {
    const upperCasePolicy = { ...policy, adminGroupIds: [adminGroup.toUpperCase()] };
    expect(sorted(resolveRoles({ groups: [adminGroup], isApplication: false }, upperCasePolicy))).toEqual(['Admin']);
  });

  it('grants app roles with exactly matching names and ignores unknown ones', () => {
    const claims = { roles: ['Admin', 'admin', 'SuperUser', 'Requester.All', 'Auditor'], isApplication: false };
    expect(sorted(resolveRoles(claims, policy))).toEqual(['Admin', 'Auditor']);
  });

  it('unions app roles and group roles', () => {
    const claims = { roles: ['Auditor'], groups: [requesterGroup], isApplication: false };
    expect(sorted(resolveRoles(claims, policy))).toEqual(['Auditor', 'Requester']);
  });

  it('gives no roles for unmapped groups and no claims', () => {
    expect(resolveRoles({ groups: ['44444444-4444-4444-8444-444444444444'], isApplication: false }, policy).size).toBe(0);
    expect(resolveRoles({ isApplication: true }, policy).size).toBe(0);
  });

  it('grants Approver from its group or its app role', () => {
    expect(sorted(resolveRoles({ groups: [approverGroup], isApplication: false }, policy))).toEqual(['Approver']);
    expect(sorted(resolveRoles({ roles: ['Approver'], isApplication: false }, policy))).toEqual(['Approver']);
  });

  it('grants Runner from an app role on an application token', () => {
    expect(sorted(resolveRoles({ roles: ['Runner'], isApplication: true }, policy))).toEqual(['Runner']);
  });

  it('never grants Runner to a user, even with the Runner app role and every group', () => {
    const claims = { roles: ['Runner'], groups: [adminGroup, auditorGroup, requesterGroup], isApplication: false };
    const granted = resolveRoles(claims, policy);
    expect(granted.has('Runner')).toBe(false);
    expect(sorted(granted)).toEqual(['Admin', 'Auditor', 'Requester']);
  });

  it('never grants Runner through groups, even to an application', () => {
    const granted = resolveRoles({ groups: [adminGroup, auditorGroup, requesterGroup], isApplication: true }, policy);
    expect(granted.has('Runner')).toBe(false);
  });
});

describe('requireRole', () => {
  const caller = (...roles: Role[]) => ({ roles: new Set(roles) });

  it('passes when the caller holds any of the roles', () => {
    expect(() => requireRole(caller('Auditor'), 'Admin', 'Auditor')).not.toThrow();
  });

  it('throws forbidden naming the needed roles when the caller holds none', () => {
    let thrown: unknown;
    try {
      requireRole(caller('Requester'), 'Admin', 'Auditor');
    } catch (error) {
      thrown = error;
    }
    expect(isAppError(thrown) && thrown.code).toBe('forbidden');
    expect((thrown as Error).message).toContain('Admin, Auditor');
  });

  it('throws forbidden for a caller without roles', () => {
    expect(() => requireRole(caller(), 'Runner')).toThrow(expect.objectContaining({ code: 'forbidden' }));
  });
});

describe('rbacPolicyFromSettings', () => {
  it('takes the group ids of each role from the settings', () => {
    const settings = parseSettings(controlPlaneSettingsSchema, {
      ENTRA_TENANT_ID: '55555555-5555-4555-8555-555555555555',
      ENTRA_AUDIENCES: 'api://dbdist',
      RBAC_ADMIN_GROUP_IDS: adminGroup,
      RBAC_AUDITOR_GROUP_IDS: `${auditorGroup}, ${adminGroup}`,
      RBAC_APPROVER_GROUP_IDS: approverGroup,
      ...requiredResourceSettings,
    });
    expect(rbacPolicyFromSettings(settings)).toEqual({
      adminGroupIds: [adminGroup],
      auditorGroupIds: [auditorGroup, adminGroup],
      approverGroupIds: [approverGroup],
      requesterGroupIds: [],
    });
  });
});
