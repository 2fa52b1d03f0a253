/** Route parameter schemas shared by the function files; each names the template's `{…}` segments. */
import { z } from 'zod';
import { uuid } from '../shared/contracts/common.js';

export const IdParams = z.object({ id: uuid });
export const ServerIdParams = z.object({ serverId: uuid });
export const ServerDatabaseParams = z.object({ serverId: uuid, id: uuid });
