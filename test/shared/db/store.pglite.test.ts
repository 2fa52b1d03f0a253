import { createPgliteStore } from '../../../dev/stores.js';
import { storeContract } from './store.contract.js';

storeContract('PGlite', () => createPgliteStore());
