// kubecc's example chaincode in TypeScript: the same key-value store as
// examples/chaincode/go, as a fabric-contract-api contract.
//
//   put KEY VALUE   writes a value
//   get KEY         reads it back
//   del KEY         deletes it
//   ping            answers pong without touching the ledger
//   sleep MS        answers after MS milliseconds (a slow transaction, for tests)
//
// Arguments arrive as strings.
import { Context, Contract, Info, Returns, Transaction } from 'fabric-contract-api';

@Info({ title: 'Store', description: "kubecc's example key-value store" })
export class Store extends Contract {
    constructor() {
        super('store');
    }

    @Transaction()
    @Returns('string')
    public async put(ctx: Context, key: string, value: string): Promise<string> {
        await ctx.stub.putState(key, Buffer.from(value));
        // One line per write, for the peer log (kubecc's run copies the pod's log there).
        console.error(`put ${key}`);
        return value;
    }

    @Transaction(false)
    @Returns('string')
    public async get(ctx: Context, key: string): Promise<string> {
        const value = await ctx.stub.getState(key);
        if (!value || value.length === 0) {
            throw new Error(`key "${key}" not found`);
        }
        return Buffer.from(value).toString();
    }

    @Transaction()
    public async del(ctx: Context, key: string): Promise<void> {
        await ctx.stub.deleteState(key);
    }

    @Transaction(false)
    @Returns('string')
    public async ping(_ctx: Context): Promise<string> {
        return 'pong';
    }

    @Transaction(false)
    @Returns('string')
    public async sleep(_ctx: Context, ms: string): Promise<string> {
        const n = Number(ms);
        if (!/^[0-9]+$/.test(ms) || n > 60000) {
            throw new Error('sleep: want milliseconds from 0 to 60000');
        }
        await new Promise((resolve) => setTimeout(resolve, n));
        return 'slept';
    }
}
