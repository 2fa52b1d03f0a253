import { createPgliteStore } from '../../support/stores.js';
import { storeContract } from './store.contract.js';

storeContract('PGlite', () => createPgliteStore());
