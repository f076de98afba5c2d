// Command simplecc is a minimal put/get chaincode written against the shim directly.
// The e2e smoke test and benchmarks deploy it.
//
//	put KEY VALUE   stores VALUE under KEY and returns VALUE
//	get KEY         returns the value under KEY (error when absent)
//	ping            returns "pong" without touching state
package main

import (
	"fmt"
	"os"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
)

type simple struct{}

func (simple) Init(shim.ChaincodeStubInterface) *peer.Response { return shim.Success(nil) }

func (simple) Invoke(stub shim.ChaincodeStubInterface) *peer.Response {
	fn, args := stub.GetFunctionAndParameters()
	switch fn {
	case "put":
		if len(args) != 2 {
			return shim.Error("put wants KEY VALUE")
		}
		if err := stub.PutState(args[0], []byte(args[1])); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success([]byte(args[1]))
	case "get":
		if len(args) != 1 {
			return shim.Error("get wants KEY")
		}
		v, err := stub.GetState(args[0])
		if err != nil {
			return shim.Error(err.Error())
		}
		if v == nil {
			return shim.Error(fmt.Sprintf("key %q not found", args[0]))
		}
		return shim.Success(v)
	case "ping":
		return shim.Success([]byte("pong"))
	}
	return shim.Error(fmt.Sprintf("unknown function %q", fn))
}

func main() {
	if err := shim.Start(simple{}); err != nil {
		fmt.Fprintln(os.Stderr, "simplecc:", err)
		os.Exit(1)
	}
}
