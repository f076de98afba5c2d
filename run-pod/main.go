// Command run-pod is the run hook for resident chaincode only: run without the
// serverless relay, so it links no gRPC and stays small for as long as its
// chaincode runs. run hands resident launches to it.
package main

import "github.com/kubecc/kubecc/pkg/runhook"

func main() { runhook.Main(nil) }
