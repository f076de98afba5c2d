// Command chaincode is kubecc's example chaincode: a key-value store on the Go shim.
//
//	put KEY VALUE   writes a value
//	get KEY         reads it back
//	del KEY         deletes it
//	ping            answers pong without touching the ledger
//	sleep MS        answers after MS milliseconds (a slow transaction, for tests)
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	pb "github.com/hyperledger/fabric-protos-go-apiv2/peer"
)

type store struct{}

func (store) Init(shim.ChaincodeStubInterface) *pb.Response { return ok(nil) }

func (store) Invoke(stub shim.ChaincodeStubInterface) *pb.Response {
	fn, args := stub.GetFunctionAndParameters()
	switch {
	case fn == "put" && len(args) == 2:
		if err := stub.PutState(args[0], []byte(args[1])); err != nil {
			return shim.Error(err.Error())
		}
		// One line per write, for the peer log (kubecc's run copies the pod's log there).
		fmt.Fprintf(os.Stderr, "put %s\n", args[0])
		return ok([]byte(args[1]))
	case fn == "get" && len(args) == 1:
		v, err := stub.GetState(args[0])
		if err != nil {
			return shim.Error(err.Error())
		}
		if v == nil {
			return shim.Error(fmt.Sprintf("key %q not found", args[0]))
		}
		return ok(v)
	case fn == "del" && len(args) == 1:
		if err := stub.DelState(args[0]); err != nil {
			return shim.Error(err.Error())
		}
		return ok(nil)
	case fn == "ping":
		return ok([]byte("pong"))
	case fn == "sleep" && len(args) == 1:
		ms, err := strconv.Atoi(args[0])
		if err != nil || ms < 0 || ms > 60000 {
			return shim.Error("sleep: want milliseconds from 0 to 60000")
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return ok([]byte("slept"))
	}
	return shim.Error(fmt.Sprintf("unknown call %s/%d: want put KEY VALUE, get KEY, del KEY or ping", fn, len(args)))
}

func ok(payload []byte) *pb.Response { return shim.Success(payload) }

func main() {
	if err := shim.Start(store{}); err != nil {
		fmt.Fprintf(os.Stderr, "chaincode: %v\n", err)
		os.Exit(1)
	}
}
