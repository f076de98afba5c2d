// Command run is the peer's run hook: it starts the chaincode in Kubernetes and lives
// exactly as long as it does. On SIGTERM it deletes what it created and exits 0.
// It launches resident chaincode itself and links no gRPC, so that it starts fast
// and stays small for as long as its chaincode runs; serverless launches, which need
// the relay, go to run-serverless beside it.
package main

import "github.com/kubecc/kubecc/pkg/runhook"

func main() { runhook.Main(nil) }
