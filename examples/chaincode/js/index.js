// kubecc's example chaincode in JavaScript: the same key-value store as
// examples/chaincode/go, as a fabric-contract-api contract.
//
//   put KEY VALUE   writes a value
//   get KEY         reads it back
//   del KEY         deletes it
//   ping            answers pong without touching the ledger
//   sleep MS        answers after MS milliseconds (a slow transaction, for tests)
//
// The contract is the first (so the default) one: `peer chaincode invoke -c
// '{"Args":["put","a","1"]}'` needs no "store:" prefix. Arguments arrive as strings.
'use strict';

const { Contract } = require('fabric-contract-api');

class Store extends Contract {
    constructor() {
        super('store');
    }

    async put(ctx, key, value) {
        await ctx.stub.putState(key, Buffer.from(value));
        // One line per write, for the peer log (kubecc's run copies the pod's log there).
        console.error(`put ${key}`);
        return value;
    }

    async get(ctx, key) {
        const value = await ctx.stub.getState(key);
        if (!value || value.length === 0) {
            throw new Error(`key "${key}" not found`);
        }
        return value.toString();
    }

    async del(ctx, key) {
        await ctx.stub.deleteState(key);
        return '';
    }

    async ping() {
        return 'pong';
    }

    async sleep(ctx, ms) {
        const n = Number(ms);
        if (!/^[0-9]+$/.test(ms) || n > 60000) {
            throw new Error('sleep: want milliseconds from 0 to 60000');
        }
        await new Promise((resolve) => setTimeout(resolve, n));
        return 'slept';
    }
}

module.exports.Store = Store;
module.exports.contracts = [Store];
