// The contracts fabric-chaincode-node starts (package.json "main" is the compiled
// dist/index.js). The first one is the default: `peer chaincode invoke -c
// '{"Args":["put","a","1"]}'` needs no "store:" prefix.
import { Store } from './store';

export { Store } from './store';
export const contracts: (typeof Store)[] = [Store];
