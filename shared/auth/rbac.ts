/** Which Entra groups grant which dbdist role (app roles in the token grant them too). */
export interface RbacPolicy {
  adminGroupIds: readonly string[];
  auditorGroupIds: readonly string[];
  requesterGroupIds: readonly string[];
}
